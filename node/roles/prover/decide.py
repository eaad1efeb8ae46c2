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

A claim against ``(model, host)`` names the keys that pass both (each
with all its indices: primary and backups), and is made only with at least
``min_matches`` of them (the chain's ``claim_min_matches``, counted in
distinct keys as the ledger counts them: fewer cannot slash anyway). Without any reference
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
    """The key's primary index (the one probed and recorded)."""
    key: str
    output: str | None
    """The settled output on the deployment under test (None: not settled)."""
    references: tuple[str, ...] = ()
    """Settled outputs of the same key on reference deployments (unsettled ones left out:
    a reference that samples says nothing)."""
    backups: tuple[int, ...] = ()
    """The key's backup indices (same key text, later ranks)."""

    @property
    def indices(self) -> tuple[int, ...]:
        return (self.fp_index, *self.backups)

    def counts(self, *, require_reference: bool) -> bool:
        if self.output is None:
            return False
        if not self.references:
            return not require_reference
        return all(diverges(self.output, ref) for ref in self.references)


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """The items to claim with, as ``(fp_index, key, output)`` ascending by index."""

    items: tuple[tuple[int, str, str], ...]

    @property
    def keys(self) -> int:
        return len({key for _, key, _ in self.items})


def plan_claim(evidence: Sequence[KeyEvidence], *, min_matches: int, max_keys: int,
               require_reference: bool, burned: frozenset[int] = frozenset(),
               complete: bool = True, max_items: int = 64) -> ClaimPlan | None:
    """The claim worth making from ``evidence``, or None while it is not worth the bond.

    Thresholds count distinct keys, as the ledger does. Each chosen key is
    named with *all* its indices (primary and backups) and the one observed
    output: the ledger counts a key as matched when any of its leaves
    matches, so a host that suppresses its top token (its output then
    starts with the backup response) is caught as well. A key with any
    index burned is public and never named again. Names at most
    ``max_keys`` keys and ``max_items`` items (the ledger's cap), lowest
    indices first, and at least ``min_matches`` keys. While probes of the
    set are still out (``complete`` false) it waits for ``max_keys``
    countable keys: a claim naming more keys than the minimum still slashes
    when one of them turns out not to match.
    """
    chosen = sorted((e for e in evidence
                     if not burned.intersection(e.indices)
                     and e.counts(require_reference=require_reference)),
                    key=lambda e: e.fp_index)
    if len(chosen) < max(1, min_matches) or (not complete and len(chosen) < max_keys):
        return None
    items: list[tuple[int, str, str]] = []
    for e in chosen[:max(max_keys, min_matches)]:
        if len(items) + len(e.indices) > max_items:
            break
        items += [(i, e.key, e.output or "") for i in e.indices]
    plan = ClaimPlan(tuple(sorted(items)))
    return plan if plan.keys >= max(1, min_matches) else None


def key_groups(keys: Sequence[tuple[int, str]]) -> list[tuple[int, tuple[int, ...], str]]:
    """``(primary, backups, key)`` per key text, by primary index.

    The OMLizer lays a key's fingerprints out in a row, primary first; under
    greedy decoding a deployment answers with the primary's response, and a
    host that suppresses its top token with the first backup's. One probe
    of the key text serves every index of the group.
    """
    groups: dict[str, list[int]] = {}
    for index, key in sorted(keys):
        groups.setdefault(key, []).append(index)
    return sorted((ix[0], tuple(ix[1:]), key) for key, ix in groups.items())


def evidence_for(groups: Sequence[tuple[int, tuple[int, ...], str]],
                 outputs: Mapping[str, Sequence[str]],
                 reference_outputs: Sequence[Mapping[str, Sequence[str]]], *, samples: int,
                 min_chars: int) -> list[KeyEvidence]:
    """One :class:`KeyEvidence` per key group from raw outputs (key text -> outputs seen)."""
    out = []
    for primary, backups, key in groups:
        mine = settled_output(outputs.get(key, ()), samples=samples, min_chars=min_chars)
        refs = (settled_output(ref.get(key, ()), samples=samples, min_chars=1)
                for ref in reference_outputs)
        out.append(KeyEvidence(primary, key, mine, tuple(r for r in refs if r is not None),
                               backups))
    return out


__all__ = ["ClaimPlan", "KeyEvidence", "canonical", "diverges", "evidence_for", "key_groups",
           "majority_prefix", "plan_claim", "settled_output"]
