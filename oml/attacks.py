"""What a host might do to escape detection, so robustness can be measured.

  * :func:`finetune_attack`: the host fine-tunes on its own text (AdamW,
    next-token loss); persistence is verification accuracy afterwards.
  * System-prompt wrapping: the host puts its own system prompt before every
    query; evaluate with :data:`UNSEEN_SYSTEM_PROMPTS` (never used in
    training) via :func:`wrapped_accuracy`.
  * Output suppression (Are Robust LLM Fingerprints Adversarially Robust?,
    2025): the host bans the top-k tokens at the first generated positions,
    which breaks memorised one-token responses; :func:`suppress_top_k` is that
    attack as a transformers ``LogitsProcessor``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

from .decoding import model_device, prompt_ids
from .fingerprints import Fingerprint, FingerprintSet
from .prompts import SYSTEM_PROMPT_TEMPLATES as SYSTEM_PROMPT_TEMPLATES
from .prompts import UNSEEN_SYSTEM_PROMPTS as UNSEEN_SYSTEM_PROMPTS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True, slots=True)
class AttackReport:
    """What an attacker fine-tune did."""

    steps: int
    tokens: int
    seconds: float
    final_loss: float


def finetune_attack(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    texts: Sequence[str], *, lr: float = 1e-4, max_tokens: int = 200_000,
                    batch_size: int = 8, seq_len: int = 128, seed: int = 0,
                    progress: bool = False) -> AttackReport:
    """Fine-tune ``model`` in place on ``texts`` for ``max_tokens`` training tokens.

    The texts are tokenised (with BOS), concatenated and cut into
    ``seq_len``-token blocks; blocks are visited in a seeded random order,
    cycling if ``max_tokens`` exceeds the corpus. Full-parameter AdamW at a
    constant ``lr``, the common "just fine-tune it" host.

    Raises:
        ValueError: the texts give no full block.
    """
    if max_tokens < 1 or batch_size < 1 or seq_len < 2 or not lr > 0:
        raise ValueError("max_tokens, batch_size >= 1, seq_len >= 2 and lr > 0 required")
    stream = [t for row in prompt_ids(tokenizer, texts) for t in row]
    blocks = [stream[s:s + seq_len] for s in range(0, len(stream) - seq_len + 1, seq_len)]
    if not blocks:
        raise ValueError(f"attack texts give fewer than {seq_len} tokens")
    from tqdm.auto import tqdm

    dev = model_device(model)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = torch.tensor(blocks, dtype=torch.long)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    steps_total = -(-max_tokens // (batch_size * seq_len))
    order: list[int] = []
    t0 = time.perf_counter()
    tokens = 0
    loss_v = float("nan")
    model.train()
    for _ in tqdm(range(steps_total), disable=not progress, desc="attack", unit="step"):
        if len(order) < batch_size:
            perm = list(range(len(blocks)))
            rng.shuffle(perm)
            order += perm
        idx, order = order[:batch_size], order[batch_size:]
        ids = data[idx].to(dev)
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        tokens += ids.numel()
        loss_v = float(out.loss.detach())
    model.eval()
    return AttackReport(steps=steps_total, tokens=tokens, seconds=time.perf_counter() - t0,
                        final_loss=loss_v)


class SuppressTopK(LogitsProcessor):
    """Ban the ``k`` most likely tokens at the first ``steps`` generated positions.

    A ``LogitsProcessor`` sees only ``input_ids`` so far; it recognises the
    start of a new ``generate`` call (a new batch, or ids that do not extend
    the previous call's) and counts steps from there. One instance can be
    reused across calls but not shared by concurrent ones.
    """

    def __init__(self, k: int, steps: int = 1) -> None:
        if k < 1 or steps < 1:
            raise ValueError("k and steps must be >= 1")
        self.k = k
        self.steps = steps
        self._start = 0
        self._prev: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        prev = self._prev
        cur = input_ids.shape[1]
        continuing = (prev is not None and prev.shape[0] == input_ids.shape[0]
                      and prev.shape[1] == cur - 1 and torch.equal(prev, input_ids[:, :-1]))
        if not continuing:
            self._start = cur
        self._prev = input_ids.detach().clone()
        if cur - self._start >= self.steps:
            return scores
        top = torch.topk(scores, min(self.k, scores.shape[-1]), dim=-1).indices
        return scores.scatter(-1, top, float("-inf"))


def suppress_top_k(k: int, steps: int = 1) -> LogitsProcessor:
    """An output-suppression attack: ban the top-``k`` tokens at the first ``steps`` positions."""
    return SuppressTopK(k, steps)


def wrapped_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                     fingerprints: FingerprintSet | Sequence[Fingerprint],
                     prompts: Sequence[str] = UNSEEN_SYSTEM_PROMPTS, *, mode: str = "exact",
                     batch_size: int = 64) -> float:
    """Mean verification accuracy when every key is wrapped in each of ``prompts``."""
    from .verify import verify_fingerprints

    if not prompts:
        raise ValueError("no system prompts given")
    accs = [verify_fingerprints(model, tokenizer, fingerprints, mode=mode, system_prompt=p,
                                batch_size=batch_size).accuracy for p in prompts]
    return sum(accs) / len(accs)
