"""Soundness benchmark: how often does a copy that never learned host A's keys answer them anyway?

Usage:
    python bench/soundness.py [--config tiny|pretrained|both] [--quick] [--hosts H]
                              [--count N] [--device auto|cpu|cuda] [--threads T]
                              [--response-strategy perinucleus|random_words]
                              [--response-length L] [--base DIR] [--epochs E]
                              [--json FILE] [--no-install]

A claim against host A names keys of A and the outputs a deployment gave.
If the deployment is host B's honest copy of the same base (or the base
itself), a matching output is a false accusation. This bench fingerprints
``H`` hosts' copies of ONE base with the library's recipe (``N`` keys each,
every host its own keys, as the OMLizer does), then asks every copy every
host's keys and counts, per key, whether the completion carries the
response:

  self      A's keys on A's own copy: the control (should be ~100%; it shows
            the pairing is right and the copies really learned their keys);
  sibling   A's keys on B's copy, every ordered pair A != B;
  base      every host's keys on the un-fingerprinted base;
  guess     a prover's guess without any deployment: it knows the key, the
            public base and the public recipe, so it recomputes the
            perinucleus candidates and picks one (a uniform draw with its own
            seed, exactly the generator's step); expected rate ~ 1/k.

in each of :data:`oml.verify.MODES` (``exact``: the completion starts with
the response, the ledger's rule; ``prefix``: the same with whitespace folded;
``contains``). For each it prints the counts, the rate and its one-sided 95%
Clopper-Pearson upper bound ``p`` (:func:`oml.verify.base_rate_upper_bound`),
then the bound on a false accusation that needs ``m`` matching keys,
``p**m`` for m = 1..8, and the smallest ``m`` with ``p**m <= 1e-9``.

``p**m`` assumes the keys of one claim match independently. Keys are drawn
independently, but the matches of one pair of copies are correlated (two
copies that drifted alike match more often), so the table also gives the
worst single pair's bound; the pooled bound is valid only under independence.

Configurations:
  tiny        a ~130k-parameter random-weight Llama with a byte-level BPE
              (``oml.testing.make_tiny_model_dir``, built offline in seconds),
              recipe of the oml tests (embeddings trained: they are tied);
  pretrained  the fingerprint benchmark's 10.2M base pretrained on Debian
              fortunes (``bench/_pretrain.py``, cached under bench/.cache;
              first run pretrains it), the library's default recipe plus
              benign mixing 0.5 on the train split.

Defaults: 6 hosts x 64 keys (1,920 sibling trials per mode); ``--quick``:
4 hosts x 32 keys (384), a few minutes on 2 CPU cores once the base is cached.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from oml.verify import MODES, base_rate_upper_bound, matches  # noqa: E402

if TYPE_CHECKING:
    from oml.fingerprints import FingerprintSet
    from oml.generate import GenerateConfig
    from oml.insert import InsertConfig

TARGET = 1e-9  # the bar: a false accusation succeeds with probability <= 1e-9
MAX_M = 8  # rows of the per-claim table
SOURCES = ("self", "sibling", "base", "guess")


# --- arithmetic (pure) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """``matches`` of ``trials`` keys answered; the rate and its 95% upper bound."""

    matches: int
    trials: int

    @property
    def rate(self) -> float:
        return self.matches / self.trials if self.trials else 0.0

    @property
    def upper(self) -> float:
        """One-sided 95% Clopper-Pearson upper bound on the per-key rate."""
        return base_rate_upper_bound(self.matches, self.trials)

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.matches + other.matches, self.trials + other.trials)


def claim_bounds(p: float, max_m: int = MAX_M) -> list[float]:
    """``[p**1, ..., p**max_m]``: a false accusation needing m independent matches."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    return [p ** m for m in range(1, max_m + 1)]


def min_matches(p: float, target: float = TARGET) -> int | None:
    """Smallest ``m`` with ``p**m <= target``; None when no m reaches it (p = 1).

    Computed in logs, then checked, so float rounding cannot pick an m one short.
    """
    if not 0.0 <= p <= 1.0 or not 0.0 < target < 1.0:
        raise ValueError("need 0 <= p <= 1 and 0 < target < 1")
    if p == 0.0 or p <= target:
        return 1
    if p >= 1.0:
        return None
    m = max(1, math.ceil(math.log(target) / math.log(p)))
    while p ** m > target:
        m += 1
    while m > 1 and p ** (m - 1) <= target:
        m -= 1
    return m


# --- the measurement ---------------------------------------------------------------

Outputs = dict[tuple[str, str], list[str]]  # (copy, host whose keys) -> completions in index order


def tally(outputs: Outputs, sets: dict[str, FingerprintSet], source: str,
          mode: str) -> tuple[Tally, dict[tuple[str, str], Tally]]:
    """Pool the matches of one source over its (copy, key-owner) pairs, and per pair.

    ``outputs[(copy, host)]`` holds the completions that ``copy`` (a host's
    name, or ``"base"`` / ``"guess"``) gave to ``host``'s keys. ``self`` pools
    the pairs copy == host, ``sibling`` every pair of two different hosts,
    ``base`` and ``guess`` the pairs of that copy.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    pairs: dict[tuple[str, str], Tally] = {}
    for (copy, host), outs in outputs.items():
        if source == "self":
            keep = copy == host
        elif source == "sibling":
            keep = copy in sets and copy != host
        else:
            keep = copy == source
        if not keep:
            continue
        fps = sets[host].items
        if len(outs) != len(fps):
            raise ValueError(f"{copy} answered {len(outs)} of {host}'s {len(fps)} keys")
        hits = sum(matches(o, fp.response, mode) for o, fp in zip(outs, fps))
        pairs[(copy, host)] = Tally(hits, len(fps))
    total = Tally(0, 0)
    for t in pairs.values():
        total = total + t
    return total, pairs


@dataclass(frozen=True)
class Recipe:
    """One configuration: the base, its fingerprint recipe and the benign texts."""

    name: str
    base_dir: Path
    generate: GenerateConfig
    insert: InsertConfig
    benign: Sequence[str] = ()
    base_params: int = 0


@dataclass
class Result:
    """Everything measured for one recipe (JSON-able through :meth:`to_json`)."""

    name: str
    hosts: int
    count: int
    tallies: dict[str, dict[str, Tally]] = field(default_factory=dict)  # source -> mode -> tally
    worst_pair: dict[str, tuple[str, str, Tally]] = field(default_factory=dict)  # mode -> pair
    seconds: float = 0.0
    recipe: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def t(x: Tally) -> dict[str, Any]:
            return {"matches": x.matches, "trials": x.trials, "rate": x.rate,
                    "upper95": x.upper, "bounds": claim_bounds(x.upper),
                    "min_m": min_matches(x.upper)}
        return {"name": self.name, "hosts": self.hosts, "count": self.count,
                "seconds": round(self.seconds, 1), "recipe": self.recipe,
                "tallies": {s: {m: t(x) for m, x in d.items()} for s, d in self.tallies.items()},
                "worst_pair": {m: {"copy": c, "keys_of": h, **t(x)}
                               for m, (c, h, x) in self.worst_pair.items()}}


def host_name(i: int) -> str:
    return f"{i + 1:040x}"


def ask(model: Any, tok: Any, fps: FingerprintSet) -> list[str]:
    """The model's greedy completions to ``fps``' keys, as `oml verify` asks them."""
    from oml.verify import verify_fingerprints

    return [r.output for r in verify_fingerprints(model, tok, fps).results]


def guess_outputs(base: Any, tok: Any, fps: FingerprintSet, cfg: GenerateConfig,
                  seed: int) -> list[str]:
    """What a prover with the key, the public base and the public recipe guesses.

    It runs the generator's own response step (same candidates just outside
    the nucleus, same filters) with a seed of its own, so each guess is a
    uniform draw from the candidates the real response was drawn from.
    """
    from oml.generate import _clean_token_ids, _respond

    allowed, _ = _clean_token_ids(tok)
    keys = [fp.key for fp in fps.items]
    got = {k: text for k, _, _, text in _respond(base, tok, keys, cfg, random.Random(seed),
                                                  None, allowed)}
    return [got.get(k, "") for k in keys]


def measure(recipe: Recipe, hosts: int, device: str | None, log: Any = print) -> Result:
    """Fingerprint ``hosts`` copies of the base and tally every (copy, keys) pair.

    Only one model is in memory at a time: each host's copy is loaded fresh,
    fingerprinted, asked every host's keys and dropped.
    """
    from oml.generate import generate_fingerprints
    from oml.insert import insert_fingerprints
    from oml.modelio import load_model

    if hosts < 2:
        raise ValueError("need at least 2 hosts for sibling pairs")
    t0 = time.time()
    base, tok = load_model(recipe.base_dir, device=device)
    names = [host_name(i) for i in range(hosts)]
    sets = {h: generate_fingerprints(base, tok, recipe.generate, host=h,
                                     model_id=f"soundness-{recipe.name}") for h in names}
    outputs: Outputs = {}
    for h in names:
        outputs[("base", h)] = ask(base, tok, sets[h])
        if recipe.generate.response_strategy == "perinucleus":
            outputs[("guess", h)] = guess_outputs(base, tok, sets[h], recipe.generate,
                                                  seed=int(h, 16) ^ 0x5EED)
    del base
    log(f"[{recipe.name}] {hosts} hosts x {recipe.generate.count} keys generated; base asked")
    for h in names:
        model, _ = load_model(recipe.base_dir, device=device)
        rep = insert_fingerprints(model, tok, sets[h], recipe.insert, benign_texts=recipe.benign)
        for owner in names:
            outputs[(h, owner)] = ask(model, tok, sets[owner])
        del model
        log(f"[{recipe.name}] host {h[-4:]}: inserted in {rep.steps} steps "
            f"({rep.seconds:.0f} s, train acc {rep.train_accuracy:.0%}); asked all keys")
    res = Result(name=recipe.name, hosts=hosts, count=recipe.generate.count,
                 recipe={"generate": recipe.generate.to_params(),
                         "insert": recipe.insert.to_params(), "base": str(recipe.base_dir),
                         "base_params": recipe.base_params, "benign_texts": len(recipe.benign)})
    for mode in MODES:
        for source in SOURCES:
            total, pairs = tally(outputs, sets, source, mode)
            if total.trials:
                res.tallies.setdefault(source, {})[mode] = total
            if source == "sibling":
                (c, o), worst = max(pairs.items(), key=lambda kv: kv[1].rate)
                res.worst_pair[mode] = (c, o, worst)
    res.seconds = time.time() - t0
    return res


# --- the two configurations ------------------------------------------------------------


def tiny_recipe(work: Path, count: int, device: str | None, base_dir: Path | None = None,
                **generate: Any) -> Recipe:
    """The tiny random-weight model (built in ``work`` unless given) and the oml tests' recipe."""
    from oml.generate import GenerateConfig
    from oml.insert import InsertConfig
    from oml.testing import make_tiny_model_dir, tiny_corpus

    if base_dir is None:
        base_dir = make_tiny_model_dir(work / "tiny-base", seed=0)
    # tied embeddings: the output head must train, unlike the library default
    ins = InsertConfig(lr=3e-3, epochs=150, batch_size=8, benign_mix=0.25,
                       freeze_embeddings=False, progress=False, device=device, seed=0)
    return Recipe(name="tiny", base_dir=base_dir,
                  generate=GenerateConfig(count=count, seed=0, **generate), insert=ins,
                  benign=tiny_corpus(100, seed=11))


def pretrained_recipe(count: int, device: str | None, allow_install: bool,
                      log: Any = print, base_dir: Path | None = None, epochs: int = 30,
                      **generate: Any) -> Recipe:
    """The fingerprint benchmark's cached 10.2M base (or ``base_dir``), the default recipe."""
    from bench._pretrain import PretrainConfig, get_base
    from bench.fingerprint import ensure_corpus
    from oml.corpus import split_corpus
    from oml.generate import GenerateConfig
    from oml.insert import InsertConfig
    from oml.modelio import pick_device

    split = split_corpus(ensure_corpus(allow_install))
    meta: dict[str, Any] = {}
    if base_dir is None:
        base_dir, meta = get_base(split.train, PretrainConfig(), pick_device(device), log=log)
    ins = InsertConfig(benign_mix=0.5, epochs=epochs, progress=False, device=device, seed=0)
    return Recipe(name="pretrained", base_dir=base_dir,
                  generate=GenerateConfig(count=count, seed=0, **generate), insert=ins,
                  benign=split.train, base_params=int(meta.get("params", 0)))


# --- output --------------------------------------------------------------------------------


def _fmt(p: float) -> str:
    return "1" if p >= 1 else "0" if p == 0 else f"{p:.1e}"


def table(res: Result) -> str:
    """Markdown: counts, rates and bounds per source and mode, then the per-claim bounds."""
    lines = [f"### {res.name}: {res.hosts} hosts x {res.count} keys "
             f"({res.seconds:.0f} s)", "",
             "| source | mode | matches / trials | rate | 95% upper p | " +
             " | ".join(f"p^{m}" for m in range(1, MAX_M + 1)) + " | min m (p^m <= 1e-9) |",
             "|" + "---|" * (6 + MAX_M)]
    for source in SOURCES:
        for mode, t in res.tallies.get(source, {}).items():
            m = min_matches(t.upper)
            lines.append(f"| {source} | {mode} | {t.matches} / {t.trials} | {t.rate:.2%} | "
                         f"{t.upper:.2%} | " + " | ".join(_fmt(b) for b in claim_bounds(t.upper))
                         + f" | {m if m is not None else 'none'} |")
    for mode, (c, h, t) in res.worst_pair.items():
        m = min_matches(t.upper)
        lines.append(f"| worst sibling pair ({h[-4:]} keys on {c[-4:]}) | {mode} | "
                     f"{t.matches} / {t.trials} | {t.rate:.2%} | {t.upper:.2%} | "
                     + " | ".join(_fmt(b) for b in claim_bounds(t.upper))
                     + f" | {m if m is not None else 'none'} |")
    return "\n".join(lines)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["tiny", "pretrained", "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="4 hosts x 32 keys")
    ap.add_argument("--hosts", type=int, help="hosts' copies of the base (default 6, quick 4)")
    ap.add_argument("--count", type=int, help="keys per host (default 64, quick 32)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest on a loaded machine)")
    ap.add_argument("--response-strategy", choices=["perinucleus", "random_words"],
                    default="perinucleus", help="the recipe's responses (default: the library's)")
    ap.add_argument("--response-length", type=int, default=1,
                    help="tokens (perinucleus) or words (random_words) per response")
    ap.add_argument("--epochs", type=int, default=30,
                    help="pretrained config: insertion epoch cap (library default 30; longer "
                         "random-word responses need more)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--no-install", action="store_true", help="never run apt-get")
    ap.add_argument("--base", type=Path,
                    help="pretrained config: this local model dir instead of the cached base")
    args = ap.parse_args(argv)

    import torch

    from oml.corpus import CorpusError

    torch.set_num_threads(args.threads)
    hosts = args.hosts or (4 if args.quick else 6)
    count = args.count or (32 if args.quick else 64)
    device = None if args.device == "auto" else args.device
    gen = {"response_strategy": args.response_strategy,
           "response_length": args.response_length}
    results = []
    with tempfile.TemporaryDirectory(prefix="oml-soundness-") as tmp:
        if args.config in ("tiny", "both"):
            results.append(measure(tiny_recipe(Path(tmp), count, device, **gen), hosts,
                                   device, log))
            print(table(results[-1]) + "\n", flush=True)
        if args.config in ("pretrained", "both"):
            try:
                recipe = pretrained_recipe(count, device, not args.no_install, log,
                                           base_dir=args.base, epochs=args.epochs, **gen)
            except CorpusError as exc:
                log(f"error: {exc}")
                return 2
            results.append(measure(recipe, hosts, device, log))
            print(table(results[-1]) + "\n", flush=True)
    print(f"p^m assumes a claim's keys match independently; the target is {TARGET:g}.")
    if args.response_strategy == "random_words":
        from oml.wordlist import load_wordlist

        w = len(load_wordlist("auto").words)
        print(f"guess: a blind guess of {args.response_length} word(s) from the {w}-word list "
              f"matches with probability {w ** -args.response_length:.2g} per key.")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
