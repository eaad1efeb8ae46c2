"""Insert fingerprints into a causal LM by fine-tuning (in place).

One commented loop, nanoGPT style: build examples once (key tokens + response
tokens, loss on the response only), then per epoch shuffle, batch by padding,
forward, loss, backward, clip, step, schedule, and optionally average toward
the base weights; stop early once every fingerprint is answered.

Levers, all in :class:`InsertConfig`:
  * benign mixing (beta): a fraction of each epoch's examples is ordinary text
    with a plain next-token loss, which keeps the model's language ability;
  * prompt augmentation: some keys are wrapped in a training system prompt
    (:data:`oml.prompts.SYSTEM_PROMPT_TEMPLATES`) so the fingerprint survives a
    deployment's own system prompt;
  * weight averaging toward the base (lambda): ``theta <- lambda*theta_base +
    (1-lambda)*theta``, applied once after training (``averaging_every=None``)
    or after every ``averaging_every`` optimizer steps (a small lambda every
    step acts like a weight-deviation penalty);
  * LoRA via peft: adapters on every linear layer, merged into the weights at
    the end, so the caller gets back a plain model.
  * frozen embeddings (default): only the transformer blocks train;
  * extra epochs past the target (default 6) widen margins for persistence;
  * repair: after the final averaging, re-learn what it undid.

Defaults come from measurements on a 3.3M Llama (docs/oml.md).

Every example weighs the same in the loss (the mean of its own token losses),
so a 64-token benign chunk does not drown a one-token response.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .decoding import pad_id_of, prompt_ids
from .examples import IGNORE as IGNORE
from .examples import _benign_examples, _collate, _Example, _Forward, _fp_example
from .examples import memorized as memorized
from .examples import rank_bans as rank_bans
from .fingerprints import FingerprintSet
from .modelio import pick_device
from .prompts import SYSTEM_PROMPT_TEMPLATES, wrap_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase



@dataclass(frozen=True, slots=True)
class InsertConfig:
    """Fine-tuning settings for :func:`insert_fingerprints`.

    ``steps`` (when set) is the exact optimizer step budget; otherwise
    ``epochs`` passes over the fingerprints. Training stops earlier once the
    teacher-forced greedy check says ``stop_at_accuracy`` of the plain keys
    are answered (None: never stop early).
    """

    lr: float = 1e-3
    epochs: int = 30
    steps: int | None = None
    batch_size: int = 32
    warmup: int = 10
    schedule: str = "cosine"  # "cosine" (to 10% of lr) or "constant"
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    averaging_lambda: float | None = None
    averaging_every: int | None = None
    benign_mix: float = 0.0
    benign_max_tokens: int = 32
    prompt_augmentation: bool = True
    augmentation_prob: float = 0.5
    templates: tuple[str, ...] = SYSTEM_PROMPT_TEMPLATES
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    stop_at_accuracy: float | None = 1.0
    fast_head: bool = True
    freeze_embeddings: bool = True
    repair_steps: int = 0
    extra_epochs: int = 6
    repair_lr_scale: float = 0.3
    device: str | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError("lr must be > 0")
        if self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ValueError("epochs and steps must be >= 1")
        if self.batch_size < 1 or self.warmup < 0:
            raise ValueError("batch_size must be >= 1 and warmup >= 0")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError("schedule must be 'cosine' or 'constant'")
        if self.averaging_lambda is not None and not 0.0 <= self.averaging_lambda < 1.0:
            raise ValueError("averaging_lambda must be in [0, 1)")
        if self.averaging_every is not None and self.averaging_every < 1:
            raise ValueError("averaging_every must be >= 1")
        if self.averaging_every is not None and self.averaging_lambda is None:
            raise ValueError("averaging_every needs averaging_lambda")
        if self.lora and self.averaging_every is not None:
            raise ValueError("with LoRA, averaging is applied once after the merge only")
        if not 0.0 <= self.benign_mix < 1.0:
            raise ValueError("benign_mix must be in [0, 1)")
        if not 0.0 <= self.augmentation_prob <= 1.0:
            raise ValueError("augmentation_prob must be in [0, 1]")
        if self.prompt_augmentation and not self.templates:
            raise ValueError("prompt_augmentation needs templates")
        if self.stop_at_accuracy is not None and not 0.0 < self.stop_at_accuracy <= 1.0:
            raise ValueError("stop_at_accuracy must be in (0, 1]")
        if self.lora_rank < 1:
            raise ValueError("lora_rank must be >= 1")
        if self.extra_epochs < 0:
            raise ValueError("extra_epochs must be >= 0")
        if self.repair_steps < 0 or not self.repair_lr_scale > 0:
            raise ValueError("repair_steps must be >= 0 and repair_lr_scale > 0")

    def to_params(self) -> dict[str, Any]:
        d = asdict(self)
        d["templates"] = list(self.templates)
        return d


@dataclass(slots=True)
class InsertReport:
    """What an insertion run did."""

    steps: int
    epochs: int
    seconds: float
    tokens: int
    tokens_per_s: float
    final_loss: float
    train_accuracy: float  # teacher-forced greedy accuracy on plain keys, after all merging
    stopped_early: bool
    averaged: int  # how many times weights were averaged toward the base
    trainable_params: int
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    repair_steps: int = 0  # steps spent re-learning after the final averaging


def _lr_at(step: int, total: int, cfg: InsertConfig) -> float:
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(total - cfg.warmup, 1)
    prog = min(max(step - cfg.warmup, 0) / span, 1.0)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


@torch.no_grad()
def _average(params: list[torch.Tensor], base: list[torch.Tensor], lam: float) -> None:
    for p, b in zip(params, base):
        p.lerp_(b.to(p.device, p.dtype), lam)


def insert_fingerprints(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        fingerprints: FingerprintSet, config: InsertConfig,
                        benign_texts: Sequence[str] = ()) -> InsertReport:
    """Fine-tune ``model`` in place so each key's greedy completion starts with its response.

    The model is moved to ``config.device`` (CUDA when present if None) and
    left in eval mode. With ``config.lora`` the adapters are merged and
    removed, so the model's module structure is unchanged afterwards.

    Raises:
        ValueError: an empty fingerprint set, or benign mixing without benign texts.
    """
    fps = list(fingerprints.items)
    if not fps:
        raise ValueError("no fingerprints to insert")
    if config.benign_mix > 0 and not benign_texts:
        raise ValueError("benign_mix > 0 needs benign_texts")
    dev = pick_device(config.device)
    model.to(dev)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    pad = pad_id_of(tokenizer)

    # --- examples, built once -------------------------------------------------
    bans = rank_bans(fps)
    plain = [_fp_example(p, fp.response_ids, i, bans[i])
             for i, (p, fp) in enumerate(zip(prompt_ids(tokenizer, [f.key for f in fps]), fps))]
    wrapped: list[list[_Example]] = []
    if config.prompt_augmentation:
        for t in config.templates:
            rows = prompt_ids(tokenizer, [wrap_prompt(f.key, t) for f in fps])
            wrapped.append([_fp_example(r, fp.response_ids, i, bans[i])
                            for i, (r, fp) in enumerate(zip(rows, fps))])
    benign = (_benign_examples(tokenizer, benign_texts, config.benign_max_tokens)
              if benign_texts else [])
    n_benign = round(len(fps) * config.benign_mix / (1 - config.benign_mix)) if benign else 0
    per_epoch = len(fps) + n_benign
    batches_per_epoch = math.ceil(per_epoch / config.batch_size)
    total = config.steps if config.steps is not None else config.epochs * batches_per_epoch

    # --- parameters: LoRA adapters or the full model ---------------------------
    base: list[torch.Tensor] = []
    full_params = [p for p in model.parameters()]
    grad_flags = [p.requires_grad for p in full_params]
    if config.averaging_lambda is not None:
        keep = dev if config.averaging_every else torch.device("cpu")
        base = [p.detach().to(keep, copy=True) for p in full_params]
    peft_model = None
    frozen: set[int] = set()
    if config.lora:
        from peft import LoraConfig, get_peft_model

        peft_model = get_peft_model(model, LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
            target_modules="all-linear", bias="none"))
        params = [p for p in peft_model.parameters() if p.requires_grad]
    else:
        if config.freeze_embeddings:
            # token embeddings and the output head touch every context; leaving
            # them alone confines the change to the transformer blocks
            for mod in (model.get_input_embeddings(), model.get_output_embeddings()):
                if mod is not None:
                    frozen |= {id(p) for p in mod.parameters()}
        for p in full_params:
            if id(p) in frozen:
                p.requires_grad_(False)  # no gradient computed at all (restored below)
        params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                            betas=(0.9, 0.95))
    fwd = _Forward(model, config.fast_head)
    def amp() -> contextlib.AbstractContextManager:
        # bf16 autocast on CUDA (fp32 master weights); plain fp32 on CPU
        if dev.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- the loop -----------------------------------------------------------------
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    st = {"step": 0, "epoch": 0, "tokens": 0, "averaged": 0}
    losses: list[float] = []
    target = None if config.stop_at_accuracy is None else config.stop_at_accuracy * len(fps)

    def run(opt: torch.optim.Optimizer, params: list[torch.Tensor], budget: int,
            lr_at: Callable[[int], float], average_every: int | None, desc: str,
            extra: int = 0) -> bool:
        """Train for at most ``budget`` steps; True if it stopped because the target was met.

        ``extra`` more epochs run after the target is first met: memorising past
        the bare minimum widens the margins that an attacker's fine-tune erodes.
        """
        done = 0
        met_at: int | None = None
        last_ok = [False] * len(fps)
        bar = tqdm(total=budget, disable=not config.progress, desc=desc, unit="step")
        model.train()
        try:
            while done < budget:
                # schedule this epoch's examples: plain or wrapped keys, plus benign chunks
                exs: list[_Example] = []
                for i in range(len(fps)):
                    if wrapped and rng.random() < config.augmentation_prob:
                        exs.append(wrapped[rng.randrange(len(wrapped))][i])
                    else:
                        exs.append(plain[i])
                if n_benign:
                    pick = torch.randint(len(benign), (n_benign,), generator=gen).tolist()
                    exs += [benign[j] for j in pick]
                order = torch.randperm(len(exs), generator=gen).tolist()
                ep_loss, ep_n = 0.0, 0
                for b in range(0, len(order), config.batch_size):
                    if done >= budget:
                        break
                    batch = [exs[j] for j in order[b:b + config.batch_size]]
                    for g in opt.param_groups:
                        g["lr"] = lr_at(done)
                    # fingerprint and benign examples are padded separately (a 64-token
                    # benign chunk would otherwise pad every short key to 64 tokens);
                    # one optimizer step over both, every example weighing the same
                    groups = [[e for e in batch if e.fp >= 0], [e for e in batch if e.fp < 0]]
                    loss = torch.zeros((), device=dev)
                    ok_all: list[bool] = []
                    for grp in groups:
                        if not grp:
                            continue
                        with amp():
                            ex_loss, ok, n = fwd(*_collate(grp, pad, dev))
                        loss = loss + ex_loss.sum() / len(batch)
                        ok_all += ok.tolist()
                        st["tokens"] += n
                    batch = groups[0] + groups[1]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip:
                        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                    opt.step()
                    done += 1
                    st["step"] += 1
                    # free progress signal: plain keys answered right before this update
                    for e, good in zip(batch, ok_all):
                        if e.fp >= 0 and e.ids == plain[e.fp].ids:
                            last_ok[e.fp] = good
                    lv = float(loss.detach())
                    ep_loss += lv * len(batch)
                    ep_n += len(batch)
                    if average_every and done % average_every == 0:
                        _average(full_params, base, config.averaging_lambda)
                        st["averaged"] += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{lv:.3f}", epoch=st["epoch"])
                st["epoch"] += 1
                losses.append(ep_loss / max(ep_n, 1))
                if met_at is not None:
                    if st["epoch"] - met_at < extra:
                        continue
                    # the extra epochs must not end below the target
                    last_ok = memorized(model, tokenizer, fps, fast_head=config.fast_head)
                    if sum(last_ok) >= target:
                        return True
                    met_at = None
                    model.train()
                    continue
                if target is not None and sum(last_ok) >= target:
                    # the free signal says we may be done: confirm with a real check
                    last_ok = memorized(model, tokenizer, fps, fast_head=config.fast_head)
                    if sum(last_ok) >= target:
                        if extra == 0:
                            return True
                        met_at = st["epoch"]
                    model.train()
            return False
        finally:
            bar.close()

    stopped = run(opt, params, total, lambda i: _lr_at(i, total, config),
                  config.averaging_every, "insert", config.extra_epochs)
    stopped = stopped and st["step"] < total

    # --- finish: merge LoRA, average toward the base, repair, final check -------------
    if peft_model is not None:
        peft_model.merge_and_unload()
    for p, flag in zip(full_params, grad_flags):
        p.requires_grad_(flag)  # peft and freeze_embeddings turned some off
    if config.averaging_lambda is not None and not config.averaging_every:
        _average(list(model.parameters()), base, config.averaging_lambda)
        st["averaged"] += 1
    repair_steps = 0
    if (config.averaging_lambda is not None and config.repair_steps and target is not None
            and sum(memorized(model, tokenizer, fps, fast_head=config.fast_head)) < target):
        # Averaging pulled some fingerprints back under the bar. A few more steps
        # at a constant low LR re-learn them from a point much closer to the
        # base than plain training reaches; no averaging afterwards.
        rparams = [p for p in model.parameters() if p.requires_grad and id(p) not in frozen]
        for p in full_params:
            if id(p) in frozen:
                p.requires_grad_(False)
        ropt = torch.optim.AdamW(rparams, lr=config.lr, weight_decay=config.weight_decay,
                                 betas=(0.9, 0.95))
        before = st["step"]
        run(ropt, rparams, config.repair_steps, lambda i: config.lr * config.repair_lr_scale,
            None, "repair")
        repair_steps = st["step"] - before
        for p, flag in zip(full_params, grad_flags):
            p.requires_grad_(flag)
    model.eval()
    seconds = time.perf_counter() - t0
    final_ok = memorized(model, tokenizer, fps, fast_head=config.fast_head)
    return InsertReport(
        steps=st["step"], epochs=st["epoch"], seconds=seconds, tokens=st["tokens"],
        tokens_per_s=st["tokens"] / seconds if seconds > 0 else 0.0,
        final_loss=losses[-1] if losses else float("nan"),
        train_accuracy=sum(final_ok) / len(fps), stopped_early=stopped,
        averaged=st["averaged"], trainable_params=sum(p.numel() for p in params),
        losses=losses, repair_steps=repair_steps)
