"""OMLizer jobs and pending reveals: records, the phase machine, and their LMDB tables.

Job phases (one job per ``request_access`` of a (model, host, generation))::

    queued -> fetching_base -> fingerprinting -> packaging -> storing -> committing -> committed
                                   |    ^
                                   '----' retry: below min_accuracy, crash or timeout
    any unfinished phase --> failed (bad input, out of attempts, refused or failed commit)

A phase is recorded *before* its work starts and the job moves on only
after the work's result is recorded, so a node killed mid-phase redoes
exactly that phase after a restart (each phase is safe to redo: fetching
and packaging are idempotent, fingerprinting writes into a fresh work
directory, storing makes a new blob, and committing re-submits the signed
bytes it stored before the first submission, never a new signature while
the old one can still be committed). Records are JSON: they are the
role's own bookkeeping, never hashed or signed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from ..cursor import RoleDB

JOBS = b"jobs"
"""job key -> Job (JSON)."""
REVEALS = b"reveals"
"""claim id (u64) + fp index (u32) -> Reveal (JSON): one reveal per claimed leaf."""
HANDOFF = b"handoff"
"""prover address (20) + job key -> sealed prover key set."""
TABLES = (JOBS, REVEALS, HANDOFF)
_U64 = struct.Struct(">Q")
_REVEAL_KEY = struct.Struct(">QI")


class Phase(StrEnum):
    QUEUED = "queued"
    FETCHING_BASE = "fetching_base"
    FINGERPRINTING = "fingerprinting"
    PACKAGING = "packaging"
    STORING = "storing"
    COMMITTING = "committing"
    COMMITTED = "committed"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (Phase.COMMITTED, Phase.FAILED)


#: phase -> phases it may move to (besides FAILED, which every unfinished phase may reach).
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.QUEUED: frozenset({Phase.FETCHING_BASE}),
    Phase.FETCHING_BASE: frozenset({Phase.FINGERPRINTING}),
    Phase.FINGERPRINTING: frozenset({Phase.FINGERPRINTING, Phase.PACKAGING}),
    Phase.PACKAGING: frozenset({Phase.STORING}),
    Phase.STORING: frozenset({Phase.COMMITTING}),
    Phase.COMMITTING: frozenset({Phase.COMMITTED}),
    Phase.COMMITTED: frozenset(),
    Phase.FAILED: frozenset(),
}


class TransitionError(RuntimeError):
    """A broken invariant: code tried a move the phase table forbids."""


def job_key(model_id: bytes, host: bytes, generation: int) -> bytes:
    """Table key of a job: length-prefixed model id, host, generation (sorts by model)."""
    return bytes([len(model_id)]) + model_id + host + _U64.pack(generation)


@dataclass(slots=True, kw_only=True)
class Job:
    """One host's fingerprinting job. Bytes fields are kept as hex strings."""

    model_id: str
    host: str
    host_pubkey: str
    generation: int
    requested_height: int
    phase: str = Phase.QUEUED.value
    attempts: int = 0
    accuracy: float | None = None
    primary_accuracy: float | None = None
    backup_accuracy: float | None = None
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (and per worker step: generate, train, verify, ...)."""
    phase_started_ms: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    package_hash: str = ""
    fp_root: str = ""
    fp_count: int = 0
    package_blob: str = ""
    commit_tx: str = ""
    """The signed commit_omlization, stored before its first submission."""
    commit_hash: str = ""
    committed_height: int = 0
    handoff_provers: int = -1
    """Provers this host's keys were dealt to (-1: not dealt yet)."""

    @property
    def key(self) -> bytes:
        return job_key(bytes.fromhex(self.model_id), bytes.fromhex(self.host), self.generation)

    @property
    def job_id(self) -> str:
        """A short stable name (file names, logs, RPC): 16 hex digits of the key's hash."""
        return hashlib.sha256(self.key).hexdigest()[:16]

    @property
    def state(self) -> Phase:
        return Phase(self.phase)

    def move(self, to: Phase, now_ms: int, *, error: str = "") -> None:
        """Enter ``to`` (recording the time spent in the phase left).

        Raises:
            TransitionError: ``to`` is not allowed from the current phase.
        """
        here = self.state
        if here.final or (to is not Phase.FAILED and to not in TRANSITIONS[here]):
            raise TransitionError(f"job {self.job_id}: {here} -> {to} is not allowed")
        if self.phase_started_ms:
            spent = max(0, now_ms - self.phase_started_ms) / 1000
            self.timings[here.value] = round(self.timings.get(here.value, 0.0) + spent, 3)
        self.phase = to.value
        self.phase_started_ms = now_ms
        self.updated_ms = now_ms
        if error:
            self.error = error

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Job:
        data = json.loads(bytes(raw))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self, *, step: str | None = None, now_ms: int | None = None) -> dict[str, Any]:
        """The RPC view: no signed bytes; ``progress`` for an unfinished job."""
        out = asdict(self)
        out.pop("commit_tx")
        out["job_id"] = self.job_id
        try:
            out["model_id_text"] = bytes.fromhex(self.model_id).decode("utf-8")
        except UnicodeDecodeError:
            out["model_id_text"] = None
        if not self.state.final:
            elapsed = ((now_ms - self.phase_started_ms) / 1000
                       if now_ms is not None and self.phase_started_ms else None)
            out["progress"] = {"phase": self.phase, "step": step, "attempt": self.attempts,
                               "phase_elapsed_s": elapsed}
        return out


class RevealState(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"


@dataclass(slots=True, kw_only=True)
class Reveal:
    """One claimed leaf of a claim against a host this OMLizer committed, and the
    reveal posted for it (a claim names several leaves; each is revealed apart)."""

    claim_id: int
    model_id: str
    host: str
    generation: int
    fp_index: int
    reveal_by: int
    """Last height at which the ledger accepts the reveal."""
    state: str = RevealState.QUEUED.value
    tx: str = ""
    tx_hash: str = ""
    height: int = 0
    matched: int | None = None
    error: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Reveal:
        return cls(**json.loads(bytes(raw)))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("tx")
        return out


class JobStore:
    """Typed access to the role's tables (inside a caller's txn, or in its own)."""

    def __init__(self, db: RoleDB) -> None:
        self.db = db

    # -- jobs
    def get_job(self, txn: Any, key: bytes) -> Job | None:
        raw = txn.get(key, db=self.db.table(JOBS))
        return Job.decode(raw) if raw is not None else None

    def put_job(self, txn: Any, job: Job) -> None:
        txn.put(job.key, job.encode(), db=self.db.table(JOBS))

    def job(self, key: bytes) -> Job | None:
        with self.db.read() as txn:
            return self.get_job(txn, key)

    def save(self, job: Job) -> None:
        """Write ``job`` in its own transaction (durable once this returns)."""
        with self.db.write() as txn:
            self.put_job(txn, job)

    def jobs(self) -> list[Job]:
        with self.db.read() as txn:
            return [Job.decode(v) for _, v in txn.cursor(db=self.db.table(JOBS))]

    # -- reveals
    def get_reveal(self, txn: Any, claim_id: int, fp_index: int) -> Reveal | None:
        raw = txn.get(_REVEAL_KEY.pack(claim_id, fp_index), db=self.db.table(REVEALS))
        return Reveal.decode(raw) if raw is not None else None

    def put_reveal(self, txn: Any, reveal: Reveal) -> None:
        txn.put(_REVEAL_KEY.pack(reveal.claim_id, reveal.fp_index), reveal.encode(),
                db=self.db.table(REVEALS))

    def save_reveal(self, reveal: Reveal) -> None:
        with self.db.write() as txn:
            self.put_reveal(txn, reveal)

    def reveals(self) -> list[Reveal]:
        with self.db.read() as txn:
            return [Reveal.decode(v) for _, v in txn.cursor(db=self.db.table(REVEALS))]

    # -- prover key hand-off
    def put_handoff(self, prover: bytes, key: bytes, sealed: bytes) -> None:
        with self.db.write() as txn:
            txn.put(prover + key, sealed, db=self.db.table(HANDOFF))

    def handoffs_for(self, prover: bytes) -> list[tuple[bytes, bytes]]:
        """(job key, sealed set) of every host whose keys were dealt to ``prover``."""
        out = []
        with self.db.read() as txn:
            cur = txn.cursor(db=self.db.table(HANDOFF))
            if cur.set_range(prover):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prover):
                        break
                    out.append((k[len(prover):], bytes(v)))
        return out


def split_job_key(key: bytes) -> tuple[bytes, bytes, int]:
    """(model id, host, generation) of a job key."""
    n = key[0]
    model_id = key[1:1 + n]
    host = key[1 + n:21 + n]
    (generation,) = _U64.unpack(key[21 + n:29 + n])
    return model_id, host, generation


__all__ = ["HANDOFF", "JOBS", "REVEALS", "TABLES", "TRANSITIONS", "Job", "JobStore", "Phase",
           "Reveal", "RevealState", "TransitionError", "job_key", "split_job_key"]
