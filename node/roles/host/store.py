"""The host role's LMDB: voucher state, permission strings, usage, rebuttals, funding.

Why one environment (a :class:`node.roles.cursor.RoleDB`): a grant's
permission strings and the voucher that paid for them are written in one
transaction, before the model runs, so after a crash the host never holds a
permission it did not pay for, nor pays for one it cannot show. The chain
cursor of the rebuttal follower lives in the same environment, so a claim
and the rebuttal recorded for it commit together.

Tables (all values ``consensus.encoding`` lists):

* ``voucher``: model_id -> ``[count, amount, signature]``, the latest
  cumulative voucher the owner *granted* (count = the next seq).
* ``pending``: model_id -> ``[count, amount, signature]``, a voucher sent
  and not yet answered (write-ahead: after a crash, if the owner says
  VOUCHER_STALE with exactly this count, the owner holds it and the host
  adopts its amount).
* ``permits``: ``len(model_id) || model_id || query_hash || seq`` ->
  ``[issued_height, signature]``; a prefix scan finds every permission for
  one query.
* ``usage``: API key name -> ``[requests, prompt_tokens, completion_tokens, refused]``.
* ``rebuts``: claim_id -> ``[state, seq, issued_height, signature, tx]``.
* ``funding``: ``b"funded"`` -> total put into escrow so far (u64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from consensus.encoding import decode, encode, expect_bytes, expect_int, expect_list

from ..cursor import RoleDB

VOUCHER = b"voucher"
PENDING = b"pending"
PERMITS = b"permits"
USAGE = b"usage"
REBUTS = b"rebuts"
FUNDING = b"funding"
TABLES = (VOUCHER, PENDING, PERMITS, USAGE, REBUTS, FUNDING)
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class VoucherState:
    """The host's cumulative voucher for one model (count = queries paid = next seq)."""

    count: int = 0
    amount: int = 0
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        return encode([self.count, self.amount, self.signature])

    @classmethod
    def from_bytes(cls, raw: bytes) -> VoucherState:
        v = expect_list(decode(raw), 3)
        return cls(expect_int(v[0]), expect_int(v[1]), expect_bytes(v[2]))

    def to_json(self) -> dict[str, object]:
        return {"cumulative_count": self.count, "cumulative_amount": self.amount,
                "signature": self.signature.hex()}


@dataclass(frozen=True, slots=True)
class Permit:
    """One stored permission string: what a ``rebut`` transaction carries."""

    seq: int
    issued_height: int
    signature: bytes
    ticket: int = field(default=0, compare=False)
    """The :class:`~.durability.Flusher` ticket of the write that stored it (not stored)."""


@dataclass(frozen=True, slots=True)
class KeyUsage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: int = 0
    """Requests refused for want of a permission (the model did not run)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: KeyUsage) -> KeyUsage:
        return KeyUsage(self.requests + other.requests,
                        self.prompt_tokens + other.prompt_tokens,
                        self.completion_tokens + other.completion_tokens,
                        self.refused + other.refused)

    def to_json(self) -> dict[str, int]:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "refused": self.refused}


def _permit_prefix(model_id: bytes, qhash: bytes) -> bytes:
    return bytes([len(model_id)]) + model_id + qhash


class HostStore:
    """Typed access to the host role's tables; every write is one LMDB transaction."""

    def __init__(self, db: RoleDB) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path, *, sync: bool = True) -> HostStore:
        """``sync=False`` (``permit_sync_ms`` > 0): commits are fsynced by :meth:`flush`."""
        return cls(RoleDB(path, TABLES, sync=sync))

    def flush(self) -> None:
        self.db.flush()

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- vouchers

    def voucher(self, model_id: bytes) -> VoucherState:
        with self.db.read() as txn:
            raw = txn.get(model_id, db=self.db.table(VOUCHER))
        return VoucherState.from_bytes(bytes(raw)) if raw is not None else VoucherState()

    def pending(self, model_id: bytes) -> VoucherState | None:
        with self.db.read() as txn:
            raw = txn.get(model_id, db=self.db.table(PENDING))
        return VoucherState.from_bytes(bytes(raw)) if raw is not None else None

    def set_pending(self, model_id: bytes, state: VoucherState | None) -> None:
        with self.db.write() as txn:
            if state is None:
                txn.delete(model_id, db=self.db.table(PENDING))
            else:
                txn.put(model_id, state.to_bytes(), db=self.db.table(PENDING))

    def resync(self, model_id: bytes, state: VoucherState) -> None:
        """Adopt ``state`` as the granted voucher (after VOUCHER_STALE); clears pending."""
        with self.db.write() as txn:
            txn.put(model_id, state.to_bytes(), db=self.db.table(VOUCHER))
            txn.delete(model_id, db=self.db.table(PENDING))

    def record_grant(self, model_id: bytes, state: VoucherState,
                     permits: list[tuple[bytes, Permit]]) -> None:
        """Store a granted batch: its permission strings and the voucher, atomically."""
        with self.db.write() as txn:
            table = self.db.table(PERMITS)
            for qhash, permit in permits:
                key = _permit_prefix(model_id, qhash) + _U64.pack(permit.seq)
                txn.put(key, encode([permit.issued_height, permit.signature]), db=table)
            txn.put(model_id, state.to_bytes(), db=self.db.table(VOUCHER))
            txn.delete(model_id, db=self.db.table(PENDING))

    # ---------------------------------------------------------------- permits

    def permits_for(self, model_id: bytes, qhash: bytes,
                    txn: lmdb.Transaction | None = None) -> list[Permit]:
        """Every stored permission for one query of one model, oldest issued first."""
        if txn is None:
            with self.db.read() as own:
                return self.permits_for(model_id, qhash, own)
        prefix = _permit_prefix(model_id, qhash)
        out = []
        cursor = txn.cursor(db=self.db.table(PERMITS))
        if cursor.set_range(prefix):
            for key, value in cursor:
                if not bytes(key).startswith(prefix):
                    break
                v = expect_list(decode(bytes(value)), 2)
                out.append(Permit(_U64.unpack(bytes(key)[-8:])[0], expect_int(v[0]),
                                  expect_bytes(v[1])))
        return sorted(out, key=lambda p: (p.issued_height, p.seq))

    def permit_count(self) -> int:
        with self.db.read() as txn:
            return int(txn.stat(self.db.table(PERMITS))["entries"])

    # ---------------------------------------------------------------- usage

    def usage(self) -> dict[str, KeyUsage]:
        with self.db.read() as txn:
            out = {}
            for key, value in txn.cursor(db=self.db.table(USAGE)):
                v = expect_list(decode(bytes(value)), 4)
                out[bytes(key).decode("utf-8")] = KeyUsage(*(expect_int(x) for x in v))
            return out

    def add_usage(self, name: str, delta: KeyUsage) -> KeyUsage:
        key = name.encode("utf-8")
        with self.db.write() as txn:
            raw = txn.get(key, db=self.db.table(USAGE))
            old = KeyUsage(*(expect_int(x) for x in expect_list(decode(bytes(raw)), 4))) \
                if raw is not None else KeyUsage()
            new = old.plus(delta)
            txn.put(key, encode([new.requests, new.prompt_tokens, new.completion_tokens,
                                 new.refused]), db=self.db.table(USAGE))
        return new

    # ---------------------------------------------------------------- funding

    def funded(self) -> int:
        with self.db.read() as txn:
            raw = txn.get(b"funded", db=self.db.table(FUNDING))
        return _U64.unpack(bytes(raw))[0] if raw is not None else 0

    def add_funded(self, delta: int) -> int:
        """Add ``delta`` (negative: give back) to the total funded; returns the new total."""
        with self.db.write() as txn:
            raw = txn.get(b"funded", db=self.db.table(FUNDING))
            old = _U64.unpack(bytes(raw))[0] if raw is not None else 0
            new = max(0, old + delta)
            txn.put(b"funded", _U64.pack(new), db=self.db.table(FUNDING))
        return new


__all__ = ["HostStore", "KeyUsage", "Permit", "VoucherState"]
