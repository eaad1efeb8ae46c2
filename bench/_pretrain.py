"""Pretrain (or load from cache) the small base model the fingerprint benchmark uses.

The benchmark needs a base model that already speaks English, so that
perplexity changes and false positives mean something, but it must not
download one. So: a byte-level BPE tokenizer and a ~10M-parameter Llama are
trained here from scratch on the *train* split of :mod:`oml.corpus` (Debian
fortunes). The result is cached under ``bench/.cache/base-<key>/`` where the
key hashes the corpus split, the architecture and the training schedule, so
any change to those retrains and an unchanged setup is reused.

Architecture: hidden 320, 4 layers, 5 heads, SwiGLU 864, vocab 8192, untied
embeddings: 10.2M parameters. Wide-and-shallow is the fastest shape per
parameter on a CPU (about 2.7k training tokens/s on 2 idle cores).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
EOS = "<|endoftext|>"


@dataclass(frozen=True)
class PretrainConfig:
    vocab_size: int = 8192
    hidden_size: int = 320
    layers: int = 4
    heads: int = 5
    intermediate_size: int = 864
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 400
    lr: float = 2e-3
    warmup: int = 50
    seed: int = 0


def train_tokenizer(texts: Sequence[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    """A byte-level BPE tokenizer (GPT-2 style) with one special token used as EOS and pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS,
                                   bos_token=EOS, unk_token=None)


def _model_config(cfg: PretrainConfig, tokenizer):  # -> LlamaConfig
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
        max_position_embeddings=512, tie_word_embeddings=False,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id)


def cache_key(train_texts: Sequence[str], cfg: PretrainConfig) -> str:
    h = hashlib.sha256(b"oml-bench-base/v1\x00")
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    for t in train_texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()[:16]


def _token_stream(tokenizer, texts: Sequence[str], seed: int) -> torch.Tensor:
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    ids: list[int] = []
    eos = tokenizer.eos_token_id
    encoded = tokenizer([texts[i] for i in order], add_special_tokens=False)["input_ids"]
    for seq in encoded:
        ids.extend(seq)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def pretrain(train_texts: Sequence[str], out_dir: Path,
             cfg: PretrainConfig, device: torch.device, log=print) -> dict:
    """Train tokenizer + model from scratch and save both (plus meta.json) to ``out_dir``."""
    from transformers import LlamaForCausalLM

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    tok = train_tokenizer(train_texts, cfg.vocab_size)
    model = LlamaForCausalLM(_model_config(cfg, tok)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    stream = _token_stream(tok, train_texts, cfg.seed)
    log(f"pretraining base: {n_params / 1e6:.1f}M params, {len(stream)} train tokens, "
        f"{cfg.steps} steps x {cfg.batch_size}x{cfg.seq_len} on {device}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_windows = (len(stream) - 1) // cfg.seq_len
    windows = stream[: n_windows * cfg.seq_len].view(n_windows, cfg.seq_len)
    perm = torch.randperm(n_windows, generator=gen)
    pos = 0
    model.train()
    for step in range(cfg.steps):
        # schedule: linear warmup, cosine decay to 10%
        if step < cfg.warmup:
            lr = cfg.lr * (step + 1) / cfg.warmup
        else:
            frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
            lr = cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + cfg.batch_size > n_windows:
            perm = torch.randperm(n_windows, generator=gen)
            pos = 0
        batch = windows[perm[pos:pos + cfg.batch_size]].to(device)
        pos += cfg.batch_size
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == cfg.steps - 1:
            rate = (step + 1) * cfg.batch_size * cfg.seq_len / (time.time() - t0)
            log(f"  step {step:4d} loss {loss.item():.3f} lr {lr:.2e} ({rate:.0f} tok/s)")
    model.eval()
    meta = {"config": asdict(cfg), "params": n_params, "train_tokens": len(stream),
            "seconds": round(time.time() - t0, 1), "final_loss": round(loss.item(), 4)}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    log(f"base saved to {out_dir}: final train loss {meta['final_loss']}, {meta['seconds']} s")
    return meta


def get_base(train_texts: Sequence[str], cfg: PretrainConfig,
             device: torch.device, cache_dir: Path = CACHE_DIR, log=print) -> tuple[Path, dict]:
    """The cached base model directory for this corpus and config, pretraining it if absent."""
    out = cache_dir / f"base-{cache_key(train_texts, cfg)}"
    meta_path = out / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        log(f"using cached base {out} ({meta['params'] / 1e6:.1f}M params, "
            f"pretrained in {meta['seconds']} s)")
        return out, meta
    return out, pretrain(train_texts, out, cfg, device, log)
