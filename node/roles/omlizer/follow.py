"""The OMLizer's chain handler: turn committed transactions into recorded work.

Runs inside the LMDB write transaction that moves the role's cursor (see
:mod:`node.roles.cursor`), so a recorded job or reveal commits atomically
with "this block was handled": after a crash no block's work is lost or
recorded twice. It does no network or disk work of its own: it only reads
the ledger (model records) and the tx index (result events) and writes
records; the service's loops do the rest.

What it records:

- ``request_access`` (succeeded) on a model whose ``omlizers`` list this
  node's address: a queued :class:`Job` keyed by (model, host, generation),
  with the host's public key taken from the transaction itself.
- ``commit_omlization`` (ours, succeeded): the job is committed. (Ours,
  failed): the job fails with the ledger's reason. (Another OMLizer's, for
  a host we are still working on): our job fails, the host is served.
- ``open_claim`` (succeeded) against a host we committed: a queued
  :class:`Reveal` per claimed index, with the claim id and the height the
  reveals are due by (the ``claim_opened`` event names the model, host and
  indices; the ``commit_claim`` before it reveals nothing).
- ``reveal`` (ours): the reveal is done, or failed with the ledger's reason.
- ``register_role`` as prover: returns a flag so the service deals keys to it
  for hosts that had no prover yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.ledger.records import HostStatus
from node.ledger.txs import Kind, Role

from ..cursor import CommittedBlock, CommittedTx
from .jobs import JOBS, Job, JobStore, Phase, Reveal, RevealState, job_key

log = logging.getLogger("node.roles.omlizer")


@dataclass(slots=True)
class Recorded:
    """What a block added, so the service knows which loops to wake."""

    jobs: int = 0
    reveals: int = 0
    commits: int = 0
    new_prover: bool = False


class BlockRecorder:
    """The follower handler. ``model_of(model_id)`` reads the ledger; ``result_of(tx_hash)``
    the tx index (``.code``, ``.log``, ``.events``)."""

    def __init__(self, store: JobStore, *, me: bytes, model_of: Callable[[bytes], Any],
                 result_of: Callable[[bytes], Any], clock_ms: Callable[[], int],
                 host_of: Callable[[bytes, bytes], Any] | None = None) -> None:
        self._store = store
        self._me = me
        self._model_of = model_of
        self._host_of = host_of
        self._result_of = result_of
        self._now = clock_ms
        self.last = Recorded()

    def __call__(self, block: CommittedBlock, txn: Any) -> None:
        rec = Recorded()
        for committed in block.txs:
            kind = committed.tx.kind
            if kind == Kind.REQUEST_ACCESS and committed.ok:
                rec.jobs += self._on_request(block, committed, txn)
            elif kind == Kind.COMMIT_OMLIZATION:
                rec.commits += self._on_commit(block, committed, txn)
            elif kind == Kind.OPEN_CLAIM and committed.ok:
                rec.reveals += self._on_claim(committed, txn)
            elif kind == Kind.REVEAL and committed.tx.sender == self._me:
                self._on_reveal(block, committed, txn)
            elif (kind == Kind.REGISTER_ROLE and committed.ok
                  and committed.tx.body.role == Role.PROVER):
                rec.new_prover = True
        self.last = rec

    # ------------------------------------------------------------------ helpers

    def _event(self, committed: CommittedTx, type_: str) -> dict[str, Any]:
        result = self._result_of(committed.hash)
        for event in getattr(result, "events", ()) or ():
            if event.get("type") == type_:
                return dict(event.get("attributes") or {})
        return {}

    def _jobs_of(self, txn: Any, model_id: bytes, host: bytes) -> list[Job]:
        """Every job of (model, host), oldest generation first."""
        prefix = bytes([len(model_id)]) + model_id + host
        out = []
        cur = txn.cursor(db=self._store.db.table(JOBS))
        if cur.set_range(prefix):
            for k, v in cur:
                if not bytes(k).startswith(prefix):
                    break
                out.append(Job.decode(v))
        return out

    # ------------------------------------------------------------------ handlers

    def _on_request(self, block: CommittedBlock, committed: CommittedTx, txn: Any) -> int:
        body = committed.tx.body
        model = self._model_of(body.model_id)
        if model is None or self._me not in tuple(model.omlizers):
            return 0
        generation = int(self._event(committed, "request_access").get("generation", 0))
        key = job_key(body.model_id, committed.tx.sender, generation)
        if self._store.get_job(txn, key) is not None:
            return 0
        if self._served_already(body.model_id, committed.tx.sender, generation):
            log.info("request of host %s for model %r at height %d is already served or gone; "
                     "no job", committed.tx.sender.hex(), body.model_id, block.height)
            return 0
        now = self._now()
        job = Job(model_id=body.model_id.hex(), host=committed.tx.sender.hex(),
                  host_pubkey=committed.tx.sender_pubkey.hex(), generation=generation,
                  requested_height=block.height, created_ms=now, updated_ms=now,
                  phase_started_ms=now)
        self._store.put_job(txn, job)
        log.info("job %s queued: host %s requested model %r at height %d", job.job_id,
                 job.host, body.model_id, block.height)
        return 1

    def _served_already(self, model_id: bytes, host: bytes, generation: int) -> bool:
        """True when the ledger shows this request no longer pending (a follower catching up
        on old blocks must not fingerprint for requests another OMLizer served long ago)."""
        if self._host_of is None:
            return False
        rec = self._host_of(model_id, host)
        return rec is not None and (rec.generation != generation
                                    or rec.status != HostStatus.PENDING
                                    or (rec.omlizer and rec.omlizer != self._me))

    def _on_commit(self, block: CommittedBlock, committed: CommittedTx, txn: Any) -> int:
        body = committed.tx.body
        ours = committed.tx.sender == self._me
        for job in self._jobs_of(txn, body.model_id, body.host):
            if job.state.final:
                continue
            if ours and job.commit_hash == committed.hash.hex():
                if committed.ok:
                    job.committed_height = block.height
                    job.move(Phase.COMMITTED, self._now())
                    log.info("job %s committed at height %d", job.job_id, block.height)
                else:
                    result = self._result_of(committed.hash)
                    job.move(Phase.FAILED, self._now(), error=(
                        f"commit_omlization failed on chain (code {committed.code}): "
                        f"{getattr(result, 'log', '')}"))
                    log.warning("job %s: %s", job.job_id, job.error)
                self._store.put_job(txn, job)
                return 1
            if committed.ok and not ours:
                job.move(Phase.FAILED, self._now(), error=(
                    f"host was committed by another OMLizer "
                    f"{committed.tx.sender.hex()} at height {block.height}"))
                log.warning("job %s: %s", job.job_id, job.error)
                self._store.put_job(txn, job)
        return 0

    def _on_claim(self, committed: CommittedTx, txn: Any) -> int:
        attrs = self._event(committed, "claim_opened")
        if not {"claim_id", "model_id", "host", "indices"} <= attrs.keys():
            log.error("open_claim %s has no claim_opened event; cannot reveal",
                      committed.hash.hex()[:16])
            return 0
        model_id, host = bytes.fromhex(attrs["model_id"]), bytes.fromhex(attrs["host"])
        committed_jobs = [j for j in self._jobs_of(txn, model_id, host)
                          if j.state is Phase.COMMITTED]
        if not committed_jobs:
            return 0
        job = committed_jobs[-1]  # claims are filed against the host's current generation
        claim_id = int(attrs["claim_id"])
        indices = [int(i) for i in str(attrs["indices"]).split(",") if i]
        added = 0
        for fp_index in indices:
            if self._store.get_reveal(txn, claim_id, fp_index) is not None:
                continue
            self._store.put_reveal(txn, Reveal(
                claim_id=claim_id, model_id=job.model_id, host=job.host,
                generation=job.generation, fp_index=fp_index,
                reveal_by=int(attrs.get("reveal_by", 0))))
            added += 1
        log.info("claim %d against host %s (indices %s): reveals due by height %s", claim_id,
                 job.host, attrs["indices"], attrs.get("reveal_by"))
        return added

    def _on_reveal(self, block: CommittedBlock, committed: CommittedTx, txn: Any) -> None:
        body = committed.tx.body
        reveal = self._store.get_reveal(txn, body.claim_id, body.fp_index)
        if reveal is None or reveal.tx_hash != committed.hash.hex():
            return
        reveal.height = block.height
        if committed.ok:
            reveal.state = RevealState.DONE.value
            matched = self._event(committed, "reveal").get("matched")
            reveal.matched = int(matched) if matched is not None else None
            log.info("reveal for claim %d, leaf %d accepted at height %d (matched=%s)",
                     reveal.claim_id, reveal.fp_index, block.height, reveal.matched)
        else:
            result = self._result_of(committed.hash)
            reveal.state = RevealState.FAILED.value
            reveal.error = f"reveal failed on chain (code {committed.code}): " \
                           f"{getattr(result, 'log', '')}"
            log.warning("claim %d: %s", reveal.claim_id, reveal.error)
        self._store.put_reveal(txn, reveal)


__all__ = ["BlockRecorder", "Recorded"]
