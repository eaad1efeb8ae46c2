"""Fingerprinting benchmark: how many fingerprints fit, at what cost, and how robust are they.

Usage:
    python bench/fingerprint.py [--quick] [--counts 16,128,1024] [--device auto|cpu|cuda]
                                [--json FILE] [--base DIR] [--no-install]

Setup (automatic, cached):
  1. Corpus: Debian's ``fortunes`` (offline English text). If it is missing
     and we run as root with apt-get, the bench runs ``apt-get update`` and
     ``apt-get install -y fortunes``; otherwise it stops and says so
     (``--no-install`` forbids installing).
  2. The corpus is split by content hash (``oml.corpus.split_corpus``) into
     train (pretraining and benign mixing), attack (the attacker's fine-tune
     text; never seen by pretraining or insertion) and eval (held-out
     perplexity; never trained on).
  3. Base model: a 10.2M-parameter Llama + byte-level BPE tokenizer pretrained
     on the train split and cached under ``bench/.cache/`` (see
     ``bench/_pretrain.py``); the first run spends a few minutes (2 idle CPU
     cores: ~5 min) on it, later runs reuse it. ``--base DIR`` uses another
     local model instead.

Then, for each N (default 16, 128, 1024; ``--quick``: 16, 128), on a fresh
copy of the base: generate N fingerprints (random-word keys, one-token
perinucleus responses), insert them, and measure

  insert s   wall time of insertion;
  acc        exact-match accuracy (greedy completion starts with the response);
  ppl        perplexity change on held-out text vs the base;
  unseen-sp  accuracy with keys wrapped in system prompts never used in training,
             relative to plain accuracy;
  top1-supp  accuracy when the deployment bans its top-1 first token, and whether
             the binomial test still detects the fingerprints;
  FPR        fraction of keys the untouched base answers with the response;
  persist    accuracy after an attacker fine-tune (AdamW, LR 1e-4, attack split).

``--quick`` finishes in under 5 minutes on 2 idle CPU cores once the base is
cached; it uses a 60k-token attack (the full run uses 200k, the issue's bar),
and says so in the table. Timings taken while other jobs load the CPU are
pessimistic.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from oml.corpus import INSTALL_HINT, CorpusError, CorpusSplit, load_corpus, split_corpus


@dataclass(frozen=True)
class Settings:
    """Insertion recipe; the defaults are what the table in docs/oml-package.md used."""

    key_length: int = 6
    response_length: int = 1
    lr: float = 1e-3
    epochs: int = 40
    batch_size: int = 32
    warmup: int = 20
    benign_mix: float = 0.5
    prompt_augmentation: bool = True
    attack_tokens: int = 200_000
    eval_texts: int = 400
    seed: int = 0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_corpus(allow_install: bool) -> list[str]:
    """The fortunes corpus, installing the Debian package if allowed and needed."""
    try:
        return load_corpus()
    except CorpusError:
        if not allow_install or shutil.which("apt-get") is None or os.geteuid() != 0:
            raise
    log("corpus missing: running apt-get update && apt-get install -y fortunes")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "fortunes"]):
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            raise CorpusError(f"`{' '.join(cmd)}` failed; {INSTALL_HINT}")
    return load_corpus()


def host_for(n: int) -> str:
    return f"{n:040x}"


def run_one(n: int, base_dir: Path, split: CorpusSplit, base_ppl: float, s: Settings,
            device: str | None) -> dict:
    """Fingerprint a fresh copy of the base with ``n`` fingerprints and measure everything."""
    from oml.attacks import finetune_attack, suppress_top_k, wrapped_accuracy
    from oml.generate import GenerateConfig, generate_fingerprints
    from oml.insert import InsertConfig, insert_fingerprints
    from oml.modelio import load_model
    from oml.utility import perplexity
    from oml.verify import base_rate_upper_bound, decide, verify_fingerprints

    model, tok = load_model(base_dir, device=device)
    fps = generate_fingerprints(model, tok, GenerateConfig(
        count=n, seed=s.seed, key_length=s.key_length, response_length=s.response_length),
        host=host_for(n), model_id="bench-base")
    fpr_rep = verify_fingerprints(model, tok, fps)  # the base is untouched here
    cfg = InsertConfig(lr=s.lr, epochs=s.epochs, batch_size=s.batch_size, warmup=s.warmup,
                       benign_mix=s.benign_mix, prompt_augmentation=s.prompt_augmentation,
                       device=device, seed=s.seed, progress=False)
    t0 = time.time()
    report = insert_fingerprints(model, tok, fps, cfg, benign_texts=split.train)
    insert_s = time.time() - t0
    acc = verify_fingerprints(model, tok, fps).accuracy
    ppl = perplexity(model, tok, split.eval[:s.eval_texts], max_length=128)
    unseen = wrapped_accuracy(model, tok, fps)
    supp = verify_fingerprints(model, tok, fps, logits_processors=[suppress_top_k(1)])
    base_rate = base_rate_upper_bound(fpr_rep.matches, fpr_rep.total)
    supp_dec = decide(supp.matches, supp.total, base_rate)
    t1 = time.time()
    attack = finetune_attack(model, tok, split.attack, lr=1e-4, max_tokens=s.attack_tokens,
                             seed=s.seed)
    persist = verify_fingerprints(model, tok, fps).accuracy
    row = {
        "n": n, "insert_s": round(insert_s, 1), "insert_steps": report.steps,
        "insert_epochs": report.epochs, "accuracy": acc, "perplexity": ppl,
        "ppl_change": ppl / base_ppl - 1, "unseen_sp_accuracy": unseen,
        "unseen_sp_ratio": unseen / acc if acc else 0.0,
        "top1_supp_accuracy": supp.accuracy, "top1_supp_detected": supp_dec.carries,
        "top1_supp_p": supp_dec.p_value, "fpr": fpr_rep.accuracy,
        "persistence": persist, "attack_tokens": attack.tokens,
        "attack_s": round(time.time() - t1, 1),
    }
    log(f"N={n}: {json.dumps(row)}")
    return row


def table(rows: list[dict], meta: dict) -> str:
    head = ("| N | insert s | acc | ppl change | unseen-SP acc (ratio) | top-1 supp acc "
            "(detected) | FPR | persist |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['insert_s']:.0f} | {r['accuracy']:.1%} | {r['ppl_change']:+.1%} | "
            f"{r['unseen_sp_accuracy']:.1%} ({r['unseen_sp_ratio']:.2f}) | "
            f"{r['top1_supp_accuracy']:.1%} ({'yes' if r['top1_supp_detected'] else 'no'}) | "
            f"{r['fpr']:.1%} | {r['persistence']:.1%} |")
    lines.append("")
    lines.append(f"base: {meta['base_params'] / 1e6:.1f}M params, perplexity "
                 f"{meta['base_ppl']:.1f} on {meta['eval_texts']} held-out texts; device "
                 f"{meta['device']}; attack: AdamW LR 1e-4 on {meta['attack_tokens']} tokens "
                 f"of unseen text; total {meta['seconds']:.0f} s wall, "
                 f"{meta['cpu_seconds']:.0f} s CPU on {meta['threads']} threads")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 epilog="See the module docstring / docs/oml-package.md.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="N = 16 and 128 with a 60k-token attack (< 5 min on 2 CPU cores)")
    ap.add_argument("--counts", help="comma-separated N values (default 16,128,1024)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--base", type=Path, help="use this local model dir instead of pretraining")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--attack-tokens", type=int, help="attacker fine-tune tokens")
    ap.add_argument("--lr", type=float, help="insertion learning rate")
    ap.add_argument("--epochs", type=int, help="insertion epochs (early stop at 100%%)")
    ap.add_argument("--threads", type=int,
                    help="torch CPU threads (1 is faster when other jobs load the CPU)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from bench._pretrain import PretrainConfig, get_base
    from oml.modelio import load_model, pick_device
    from oml.utility import perplexity

    t0, c0 = time.time(), time.process_time()
    s = Settings(attack_tokens=60_000 if args.quick else 200_000)
    s = Settings(**{**s.__dict__, **{k: v for k, v in
                                     (("attack_tokens", args.attack_tokens), ("lr", args.lr),
                                      ("epochs", args.epochs)) if v is not None}})
    counts = ([int(c) for c in args.counts.split(",")] if args.counts
              else [16, 128] if args.quick else [16, 128, 1024])
    device = None if args.device == "auto" else args.device
    dev = pick_device(device)
    try:
        split = split_corpus(ensure_corpus(not args.no_install))
    except CorpusError as exc:
        log(f"error: {exc}")
        return 2
    if args.base:
        base_dir = args.base
    else:
        base_dir, _ = get_base(split.train, PretrainConfig(), dev, log=log)
    base, tok = load_model(base_dir, device=device)
    base_params = sum(p.numel() for p in base.parameters())
    base_ppl = perplexity(base, tok, split.eval[:s.eval_texts], max_length=128)
    del base
    log(f"base {base_dir}: {base_params / 1e6:.1f}M params, held-out perplexity {base_ppl:.1f}")
    rows = [run_one(n, base_dir, split, base_ppl, s, device) for n in counts]
    meta = {"base": str(base_dir), "base_params": base_params, "base_ppl": base_ppl,
            "eval_texts": min(s.eval_texts, len(split.eval)), "device": str(dev),
            "attack_tokens": s.attack_tokens, "settings": s.__dict__,
            "seconds": time.time() - t0, "cpu_seconds": time.process_time() - c0,
            "threads": torch.get_num_threads()}
    print(table(rows, meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
