"""The owner role's durable state, in its own LMDB environment (next to its chain cursor).

Tables, keyed by the (model, host) *pair key* ``len(model_id) || model_id || host``:

- ``vouchers``: the latest voucher the host signed and the owner accepted,
  with how many permissions the owner has signed for the pair and the last
  batch (first seq, query hashes, issued height: a retry of it is answered
  again). Written (and fsync'd: LMDB commits are durable) *before* any
  permission is sent, so a crash can lose a reply but never a voucher the
  owner was given. Concurrent grants for different pairs share one commit
  (:meth:`OwnerStore.record_grants`).
- ``issued``: pair key || first_seq (u64) -> (count, issued_height): every
  batch of permissions granted, so "which seqs did I sign, and when" has an
  answer. Seqs only ever grow: a grant needs ``first_seq`` equal to the
  stored count, checked again inside the write transaction.
- ``redeem_pending``: the signed ``redeem`` transaction in flight for the
  pair (stored before it is submitted; after a restart the same bytes are
  re-submitted, never a second redeem signed for the same nonce).
- ``redeem_last``: the last committed redeem (tx hash, height, result code,
  voucher count and amount it carried).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.crypto import ADDRESS_SIZE
from consensus.encoding import decode, encode

from ..cursor import RoleDB
from .decide import LastBatch, Voucher

VOUCHERS = b"vouchers"
ISSUED = b"issued"
PENDING = b"redeem_pending"
LAST = b"redeem_last"
TABLES = (VOUCHERS, ISSUED, PENDING, LAST)
_U64 = struct.Struct(">Q")


class OwnerStoreError(Exception):
    """A write would break the owner's invariants (a second permission for a seq)."""


def pair_key(model_id: bytes, host: bytes) -> bytes:
    return bytes([len(model_id)]) + model_id + host


def split_pair_key(key: bytes) -> tuple[bytes, bytes]:
    n = key[0]
    return bytes(key[1:1 + n]), bytes(key[1 + n:1 + n + ADDRESS_SIZE])


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """What the owner holds for one pair: the latest voucher and the permissions signed."""

    voucher: Voucher
    permitted: int
    """Permission strings signed for the pair by this owner (all batches)."""
    updated_height: int
    """Chain height when the voucher was accepted (the batch's ``issued_height``)."""
    last_batch: LastBatch


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantEntry:
    """One grant to record: the new voucher and the batch it covers."""

    model_id: bytes
    host: bytes
    voucher: Voucher
    first_seq: int
    query_hashes: tuple[bytes, ...]
    issued_height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRedeem:
    tx: bytes
    cumulative_count: int
    cumulative_amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LastRedeem:
    tx_hash: bytes
    height: int
    code: int
    cumulative_count: int
    cumulative_amount: int

    def to_json(self) -> dict[str, Any]:
        return {"tx": self.tx_hash.hex(), "height": self.height, "code": self.code,
                "ok": self.code == 0, "cumulative_count": self.cumulative_count,
                "cumulative_amount": self.cumulative_amount}


def _held(raw: bytes) -> Held:
    count, amount, sig, permitted, height, first, hashes = decode(bytes(raw))  # type: ignore
    return Held(voucher=Voucher(cumulative_count=count, cumulative_amount=amount,
                                signature=sig), permitted=permitted, updated_height=height,
                last_batch=LastBatch(first_seq=first, query_hashes=tuple(hashes),
                                     issued_height=height))


def _encode_held(held: Held) -> bytes:
    v, last = held.voucher, held.last_batch
    return encode([v.cumulative_count, v.cumulative_amount, v.signature, held.permitted,
                   held.updated_height, last.first_seq, list(last.query_hashes)])


class OwnerStore:
    """Typed access to the owner's tables; ``db`` also holds the chain cursor."""

    def __init__(self, db: RoleDB) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path) -> OwnerStore:
        return cls(RoleDB(path, TABLES))

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ vouchers

    def held(self, model_id: bytes, host: bytes) -> Held | None:
        with self.db.read() as txn:
            raw = txn.get(pair_key(model_id, host), db=self.db.table(VOUCHERS))
        return _held(raw) if raw is not None else None

    def record_grant(self, entry: GrantEntry) -> Held:
        """Store one grant (see :meth:`record_grants`).

        Raises:
            OwnerStoreError: the stored voucher already covers ``first_seq``.
        """
        result = self.record_grants([entry])[0]
        if isinstance(result, OwnerStoreError):
            raise result
        return result

    def record_grants(self, entries: list[GrantEntry]) -> list[Held | OwnerStoreError]:
        """Store each entry's voucher as its pair's latest and log its batch: one durable txn.

        An entry whose ``first_seq`` is not exactly the stored count (granting
        it would sign a second permission for a seq, or skip seqs) is not
        written; its slot in the result holds the error. The others are.
        Safe to call from a worker thread (py-lmdb opens environments NOTLS).
        """
        out: list[Held | OwnerStoreError] = []
        vouchers, issued = self.db.table(VOUCHERS), self.db.table(ISSUED)
        with self.db.write() as txn:
            for e in entries:
                key = pair_key(e.model_id, e.host)
                n = e.voucher.cumulative_count - e.first_seq
                raw = txn.get(key, db=vouchers)
                old = _held(raw) if raw is not None else None
                if n <= 0 or n != len(e.query_hashes):
                    out.append(OwnerStoreError("a grant must cover its query hashes' seqs"))
                    continue
                if old is not None and old.voucher.cumulative_count > e.first_seq:
                    out.append(OwnerStoreError(
                        f"seq {e.first_seq} was already granted (stored count "
                        f"{old.voucher.cumulative_count})"))
                    continue
                held = Held(voucher=e.voucher, permitted=(old.permitted if old else 0) + n,
                            updated_height=e.issued_height,
                            last_batch=LastBatch(first_seq=e.first_seq,
                                                 query_hashes=e.query_hashes,
                                                 issued_height=e.issued_height))
                txn.put(key, _encode_held(held), db=vouchers)
                txn.put(key + _U64.pack(e.first_seq), encode([n, e.issued_height]), db=issued)
                out.append(held)
        return out

    def pairs(self) -> Iterator[tuple[bytes, bytes, Held]]:
        """Every (model_id, host, held) the owner has a voucher for."""
        with self.db.read() as txn:
            rows = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=self.db.table(VOUCHERS))]
        for key, raw in rows:
            model_id, host = split_pair_key(key)
            yield model_id, host, _held(raw)

    def issued(self, model_id: bytes, host: bytes) -> list[tuple[int, int, int]]:
        """The pair's granted batches: (first_seq, count, issued_height), by seq."""
        prefix = pair_key(model_id, host)
        out = []
        with self.db.read() as txn:
            cur = txn.cursor(db=self.db.table(ISSUED))
            if cur.set_range(prefix):
                for k, v in cur:
                    k = bytes(k)
                    if not k.startswith(prefix) or len(k) != len(prefix) + 8:
                        break
                    n, height = decode(bytes(v))  # type: ignore[misc]
                    out.append((_U64.unpack(k[len(prefix):])[0], n, height))
        return out

    # ------------------------------------------------------------------ redeems

    def pending(self, model_id: bytes, host: bytes, txn: Any = None) -> PendingRedeem | None:
        key = pair_key(model_id, host)
        if txn is None:
            with self.db.read() as rtxn:
                raw = rtxn.get(key, db=self.db.table(PENDING))
        else:
            raw = txn.get(key, db=self.db.table(PENDING))
        if raw is None:
            return None
        tx, count, amount = decode(bytes(raw))  # type: ignore[misc]
        return PendingRedeem(tx=tx, cumulative_count=count, cumulative_amount=amount)

    def put_pending(self, model_id: bytes, host: bytes, pending: PendingRedeem) -> None:
        with self.db.write() as txn:
            txn.put(pair_key(model_id, host),
                    encode([pending.tx, pending.cumulative_count, pending.cumulative_amount]),
                    db=self.db.table(PENDING))

    def drop_pending(self, model_id: bytes, host: bytes, txn: Any = None) -> None:
        if txn is None:
            with self.db.write() as wtxn:
                wtxn.delete(pair_key(model_id, host), db=self.db.table(PENDING))
        else:
            txn.delete(pair_key(model_id, host), db=self.db.table(PENDING))

    def put_last(self, model_id: bytes, host: bytes, last: LastRedeem, txn: Any) -> None:
        txn.put(pair_key(model_id, host),
                encode([last.tx_hash, last.height, last.code, last.cumulative_count,
                        last.cumulative_amount]), db=self.db.table(LAST))

    def last(self, model_id: bytes, host: bytes) -> LastRedeem | None:
        with self.db.read() as txn:
            raw = txn.get(pair_key(model_id, host), db=self.db.table(LAST))
        if raw is None:
            return None
        h, height, code, count, amount = decode(bytes(raw))  # type: ignore[misc]
        return LastRedeem(tx_hash=h, height=height, code=code, cumulative_count=count,
                          cumulative_amount=amount)
