"""Verify fingerprints: does a model answer the keys with the responses?

A deployment answers a key with a completion that *starts with* the response
(the ledger hashes that prefix), so the main mode compares texts after
:func:`oml.commitments.normalize_text`, with greedy decoding:

  * ``exact``: the completion starts with the response (the ledger's rule);
  * ``prefix``: the same after dropping leading whitespace and folding runs of
    whitespace, for deployments that trim or reflow their output;
  * ``contains``: the response (trimmed) occurs anywhere in a completion a few
    tokens longer than the response, for deployments that add a preamble.

A match by itself proves little if an innocent model would also give it, so
:func:`decide` runs a one-sided binomial test against an innocent base rate,
measured on *references*: other hosts' copies of the same base (siblings),
or the base itself (:func:`false_positive_rate`). Siblings are the reference
that matters: fingerprinted copies of one base answer unfamiliar keys with
the same few odd tokens, so they match each other's responses far more
often than the base does (bench/soundness.py; docs/threat-model.md).
:func:`reference_rate` measures one reference, :func:`reference_base_rate`
takes the largest upper bound among several. Without references only
``exact`` mode may fall back to an assumed rate
(:func:`assumed_base_rate`); ``prefix`` and ``contains`` match much more
easily, so assuming a rate there is refused (:class:`ReferenceRequired`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .commitments import normalize_text
from .decoding import completion_text, greedy_generate, prompt_ids
from .fingerprints import Fingerprint, FingerprintSet
from .prompts import wrap_prompt

if TYPE_CHECKING:
    from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

MODES = ("exact", "prefix", "contains")
DEFAULT_BASE_RATE = 0.01  # assumed innocent rate, exact mode only, when no reference is given
_WS = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """One fingerprint's outcome: the model's completion and whether it matched."""

    index: int
    matched: bool
    output: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Per-fingerprint results and totals for one verification run."""

    mode: str
    results: tuple[VerifyResult, ...]
    system_prompt: str | None = None

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def matches(self) -> int:
        return sum(r.matched for r in self.results)

    @property
    def accuracy(self) -> float:
        return self.matches / self.total if self.total else 0.0

    def _by_key(self) -> dict[str, bool]:
        seen: dict[str, bool] = {}
        for r in self.results:
            seen[r.key] = seen.get(r.key, False) or r.matched
        return seen

    @property
    def keys_total(self) -> int:
        """Distinct keys asked (fewer than ``total`` when the set has backups)."""
        return len(self._by_key())

    @property
    def keys_detected(self) -> int:
        """Keys for which at least one fingerprint (primary or backup) matched."""
        return sum(self._by_key().values())

    @property
    def detection_rate(self) -> float:
        """``keys_detected / keys_total``: equals ``accuracy`` for a set without backups.

        With backups a key asks once and at most one of its fingerprints can
        match (they differ in the first token), so per-key detection is the
        meaningful rate; ``accuracy`` then counts fingerprints.
        """
        n = self.keys_total
        return self.keys_detected / n if n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "system_prompt": self.system_prompt, "total": self.total,
                "matches": self.matches, "accuracy": self.accuracy,
                "keys_total": self.keys_total, "keys_detected": self.keys_detected,
                "detection_rate": self.detection_rate,
                "results": [{"index": r.index, "matched": r.matched, "output": r.output}
                            for r in self.results]}


def matches(output: str, response: str, mode: str = "exact") -> bool:
    """Whether a completion ``output`` carries ``response`` under ``mode``."""
    out = normalize_text(output).decode("utf-8")
    resp = normalize_text(response).decode("utf-8")
    if mode == "exact":
        return out.startswith(resp)
    if mode == "prefix":
        fold_out = _WS.sub(" ", out).lstrip()
        fold_resp = _WS.sub(" ", resp).strip()
        return bool(fold_resp) and fold_out.startswith(fold_resp)
    if mode == "contains":
        r = resp.strip()
        return bool(r) and r in out
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def verify_fingerprints(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        fingerprints: FingerprintSet | Sequence[Fingerprint], *,
                        mode: str = "exact", system_prompt: str | None = None,
                        batch_size: int = 64, extra_tokens: int = 4,
                        logits_processors: Sequence[LogitsProcessor] = ()) -> VerifyReport:
    """Ask ``model`` every key (greedy) and check each completion for its response.

    Args:
        mode: ``exact``, ``prefix`` or ``contains`` (see the module docs).
        system_prompt: wrap each key as a deployment with this system prompt would.
        extra_tokens: tokens generated beyond the response's own length (room
            for a different tokenisation, and for ``contains``).
        logits_processors: applied during decoding, e.g. an attacker's
            :func:`oml.attacks.suppress_top_k`.

    Raises:
        ValueError: unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fps = list(fingerprints)
    if not fps:
        return VerifyReport(mode=mode, results=(), system_prompt=system_prompt)
    # a key shared by backups is asked once (a deployment answers it once)
    uniq = list(dict.fromkeys(fp.key for fp in fps))
    rows = prompt_ids(tokenizer, [wrap_prompt(k, system_prompt) for k in uniq])
    budget = max(len(fp.response_ids) for fp in fps) + extra_tokens
    outs = greedy_generate(model, tokenizer, rows, budget, batch_size=batch_size,
                           logits_processors=logits_processors)
    texts = {k: completion_text(tokenizer, row, toks) for k, row, toks in zip(uniq, rows, outs)}
    results = []
    for fp in fps:
        text = texts[fp.key]
        results.append(VerifyResult(index=fp.index, matched=matches(text, fp.response, mode),
                                    output=text, key=fp.key))
    return VerifyReport(mode=mode, results=tuple(results), system_prompt=system_prompt)


def false_positive_rate(base_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        fingerprints: FingerprintSet | Sequence[Fingerprint], **kw: Any) -> float:
    """Fraction of the keys that a model *without* the fingerprints answers anyway.

    Keyword arguments go to :func:`verify_fingerprints` (mode, system_prompt, ...).
    """
    return verify_fingerprints(base_model, tokenizer, fingerprints, **kw).accuracy


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of the test "this model carries the host's fingerprints".

    ``p_value`` is P[X >= matches] for X ~ Binomial(total, base_rate): the
    chance an innocent model with that match rate would do at least this well.
    """

    matches: int
    total: int
    base_rate: float
    alpha: float
    p_value: float
    carries: bool


def binomial_sf(k: int, n: int, p: float) -> float:
    """P[X >= k] for X ~ Binomial(n, p), exact (log-space sum, no scipy)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k, n + 1)]
    m = max(terms)
    return min(1.0, math.exp(m) * math.fsum(math.exp(t - m) for t in terms))


def base_rate_upper_bound(false_matches: int, trials: int, confidence: float = 0.95) -> float:
    """Clopper-Pearson upper bound on an innocent model's match rate.

    A base rate measured as 0/64 does not mean the true rate is 0; passing
    this bound to :func:`decide` keeps a few lucky matches from looking like
    proof.
    """
    if trials < 1 or not 0 <= false_matches <= trials or not 0 < confidence < 1:
        raise ValueError("need trials >= 1, 0 <= false_matches <= trials, 0 < confidence < 1")
    if false_matches == trials:
        return 1.0
    # smallest p with P[X <= false_matches] <= 1 - confidence, by bisection
    lo, hi = false_matches / trials, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        cdf = 1.0 - binomial_sf(false_matches + 1, trials, mid)
        if cdf > 1 - confidence:
            lo = mid
        else:
            hi = mid
    return hi


def decide(matches: int, total: int, base_rate: float, alpha: float = 1e-6) -> Decision:
    """One-sided binomial test: does ``matches`` of ``total`` beat the innocent ``base_rate``?

    Returns ``carries=True`` when the p-value is at most ``alpha``.

    Raises:
        ValueError: counts or rates out of range.
    """
    if total < 1 or not 0 <= matches <= total:
        raise ValueError(f"need total >= 1 and 0 <= matches <= total, got {matches}/{total}")
    if not 0.0 <= base_rate <= 1.0:
        raise ValueError(f"base_rate must be in [0, 1], got {base_rate}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = binomial_sf(matches, total, base_rate)
    return Decision(matches=matches, total=total, base_rate=base_rate, alpha=alpha,
                    p_value=p, carries=p <= alpha)


class ReferenceRequired(ValueError):
    """A base rate is needed in a mode where none may be assumed: measure one on references."""


def assumed_base_rate(mode: str) -> float:
    """The innocent rate to assume when no reference model is available.

    Only ``exact`` (the ledger's rule) has one, :data:`DEFAULT_BASE_RATE`, and
    it is a guess: on a tiny byte-level model two sibling copies matched each
    other's exact responses at ~10% (issue 11), so a verdict against an
    assumed rate should be confirmed with references. ``prefix`` and
    ``contains`` accept many more completions, so no rate is assumed there.

    Raises:
        ReferenceRequired: ``mode`` is ``prefix`` or ``contains``.
        ValueError: unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "exact":
        raise ReferenceRequired(
            f"mode {mode!r} needs a measured base rate: give reference models (other hosts' "
            "copies of the same base, or the base itself); no rate is assumed for it")
    return DEFAULT_BASE_RATE


@dataclass(frozen=True, slots=True)
class ReferenceRate:
    """How often one reference model (a sibling copy, or the base) answered the keys."""

    name: str
    matches: int
    total: int
    confidence: float = 0.95

    @property
    def rate(self) -> float:
        return self.matches / self.total if self.total else 0.0

    @property
    def upper(self) -> float:
        """Clopper-Pearson upper bound at ``confidence`` (1.0 for no trials)."""
        if not self.total:
            return 1.0
        return base_rate_upper_bound(self.matches, self.total, self.confidence)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "matches": self.matches, "total": self.total,
                "rate": self.rate, "upper": self.upper}


def reference_rate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                   fingerprints: FingerprintSet | Sequence[Fingerprint], *, name: str = "",
                   confidence: float = 0.95, **kw: Any) -> ReferenceRate:
    """Ask a reference model the keys; keyword arguments go to :func:`verify_fingerprints`.

    Use the same mode and system prompt as the verification it calibrates.
    """
    rep = verify_fingerprints(model, tokenizer, fingerprints, **kw)
    return ReferenceRate(name=name, matches=rep.matches, total=rep.total,
                         confidence=confidence)


def reference_base_rate(rates: Sequence[ReferenceRate]) -> float:
    """The innocent base rate for :func:`decide`: the largest upper bound among the references.

    Not the pooled count: a clean base (0 matches) would dilute a sibling's
    matches, and it is the closest innocent relative that a suspect must beat.

    Raises:
        ReferenceRequired: no references.
    """
    if not rates:
        raise ReferenceRequired("no reference models: nothing to measure a base rate on")
    return max(r.upper for r in rates)
