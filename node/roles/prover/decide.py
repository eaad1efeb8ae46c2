"""When a prover's probes are worth a claim: pure functions over recorded outputs.

A prover does not know the fingerprint responses (the OMLizer deals it keys
only), so it cannot check an output itself. It decides from two things it
can observe:

1. **Consistency** (:func:`settled_output`). Each key is sent
   ``samples_per_key`` times to a deployment with ``temperature = 0``. The
   output that counts is the longest prefix that a strict majority of the
   samples share. A greedy deployment answers identically, so the prefix is
   the whole output; a deployment that samples anyway still answers a
   trained fingerprint key with its response first on most draws, so the
   majority prefix keeps the response and drops the tails that diverge.
   Fewer samples than asked, or no majority prefix of ``min_chars``, and
   the key does not count yet.
2. **Difference from a reference** (:func:`diverges`). Every deployment
   answers every prompt with *something*, so consistency alone is no
   evidence. A fingerprinted copy of host A answers A's keys with A's
   trained responses; the base model, and other hosts' copies of the same
   base, answer them with what the base would say. So a key counts as
   evidence against A only where the deployment's output *diverges* from a
   reference that is known not to be A's copy: a configured base-model
   endpoint, or the endpoint another host registered on chain. Outputs
   diverge when they differ within their common length (one being a prefix
   of the other is agreement: a response is a prefix).

A claim against ``(model, host)`` names the keys that pass both, and is
made only with at least ``min_matches`` of them (the chain's
``claim_min_matches``: fewer cannot slash anyway). Without any reference
the rule is either "never claim" (``require_reference``, the default) or
"claim on consistency and let the OMLizer's reveal decide", which risks the
bond on every deployment that is not the host's copy (docs/prover.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def canonical(text: str) -> str:
    """The text the ledger compares (NFC, CR/CRLF folded to LF; nothing stripped)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def majority_prefix(outputs: Sequence[str]) -> str:
    """The longest prefix shared by a strict majority of ``outputs`` ("" if none).

    A prefix of length L is shared by a majority iff the majority agree on
    its characters; among all outputs, the answer is the longest such
    prefix over every output taken as the candidate.
    """
    texts = [canonical(t) for t in outputs]
    need = len(texts) // 2 + 1
    best = ""
    for cand in texts:
        lengths = sorted((_common_prefix_len(cand, other) for other in texts), reverse=True)
        length = lengths[need - 1] if len(lengths) >= need else 0
        if length > len(best):
            best = cand[:length]
    return best


def settled_output(outputs: Sequence[str], *, samples: int, min_chars: int) -> str | None:
    """The output a key counts with, once ``samples`` probes are in; None while unsettled."""
    if len(outputs) < samples:
        return None
    prefix = majority_prefix(outputs)
    return prefix if len(prefix) >= max(1, min_chars) else None


def diverges(output: str, reference: str) -> bool:
    """True when the two differ within their common length (a prefix is agreement)."""
    a, b = canonical(output), canonical(reference)
    n = min(len(a), len(b))
    return n > 0 and a[:n] != b[:n]


@dataclass(frozen=True, slots=True)
class KeyEvidence:
    """What the probes say about one key on one deployment."""

    fp_index: int
    key: str
    output: str | None
    """The settled output on the deployment under test (None: not settled)."""
    references: tuple[str, ...] = ()
    """Settled outputs of the same key on reference deployments (unsettled ones left out:
    a reference that samples says nothing)."""

    def counts(self, *, require_reference: bool) -> bool:
        if self.output is None:
            return False
        if not self.references:
            return not require_reference
        return all(diverges(self.output, ref) for ref in self.references)


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """The keys to claim with, as ``(fp_index, key, output)`` ascending by index."""

    items: tuple[tuple[int, str, str], ...]


def plan_claim(evidence: Sequence[KeyEvidence], *, min_matches: int, max_keys: int,
               require_reference: bool, burned: frozenset[int] = frozenset(),
               complete: bool = True) -> ClaimPlan | None:
    """The claim worth making from ``evidence``, or None while it is not worth the bond.

    Keys already burned on chain are never named again. Names at most
    ``max_keys`` (lowest indices first), at least ``min_matches``. While
    probes of the set are still out (``complete`` false) it waits for
    ``max_keys`` countable keys: a claim naming more than the minimum still
    slashes when one of its keys turns out not to match, so the prover does
    not claim with the first ``min_matches`` keys that count.
    """
    chosen = sorted((e for e in evidence
                     if e.fp_index not in burned and e.counts(require_reference=require_reference)),
                    key=lambda e: e.fp_index)
    if len(chosen) < max(1, min_matches) or (not complete and len(chosen) < max_keys):
        return None
    items = tuple((e.fp_index, e.key, e.output or "") for e in chosen[:max(max_keys, min_matches)])
    return ClaimPlan(items)


def primary_indices(keys: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    """The first index of each key text (its primary fingerprint; later ones are backups).

    The OMLizer lays a key's fingerprints out in a row, primary first; under
    greedy decoding a deployment answers with the primary's response, so
    that is the index a claim names. A backup's response is what a host
    that suppresses its top token emits, which a greedy probe never sees.
    """
    seen: set[str] = set()
    out = []
    for index, key in sorted(keys):
        if key not in seen:
            seen.add(key)
            out.append((index, key))
    return out


def evidence_for(keys: Sequence[tuple[int, str]], outputs: Mapping[str, Sequence[str]],
                 reference_outputs: Sequence[Mapping[str, Sequence[str]]], *, samples: int,
                 min_chars: int) -> list[KeyEvidence]:
    """One :class:`KeyEvidence` per key from raw outputs (key text -> outputs seen)."""
    out = []
    for index, key in keys:
        mine = settled_output(outputs.get(key, ()), samples=samples, min_chars=min_chars)
        refs = (settled_output(ref.get(key, ()), samples=samples, min_chars=1)
                for ref in reference_outputs)
        out.append(KeyEvidence(index, key, mine, tuple(r for r in refs if r is not None)))
    return out


__all__ = ["ClaimPlan", "KeyEvidence", "canonical", "diverges", "evidence_for",
           "majority_prefix", "plan_claim", "primary_indices", "settled_output"]
