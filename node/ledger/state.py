"""Typed state access over a write-buffered key-value view.

The ledger never talks to LMDB while it executes: it reads through an
:class:`Overlay` whose writes stay in a dict until committed. A block gets
one overlay over the store's write transaction; every transaction gets a
child overlay over the block's, which is merged on success and dropped on
failure. That is how "a failed transaction changes nothing" is enforced in
one place, and the block overlay's dict is exactly the block's write set
that the app hash commits to (see :mod:`.apphash`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

from consensus.encoding import U64_MAX, DecodeError, decode, encode

from .errors import Code, InvariantError, TxFailed
from .params import Params
from .records import Account, Claim, HostRecord, Model, RoleRecord

# Table names: one LMDB named sub-database each.
ACCOUNTS = b"accounts"
MODELS = b"models"
HOSTS = b"hosts"
ROLES = b"roles"
CLAIMS = b"claims"
BURNED = b"burned"   # (model, host, generation, index) -> claim id that used it
DUE = b"due"         # height -> claim ids whose reveal/challenge window ends there
META = b"meta"       # height, app hash, time, params, counters
TABLES = (ACCOUNTS, MODELS, HOSTS, ROLES, CLAIMS, BURNED, DUE, META)

META_BURNED = b"burned_total"
META_NEXT_CLAIM = b"next_claim_id"
META_GENESIS_SUPPLY = b"genesis_supply"


class Reader(Protocol):
    def get(self, table: bytes, key: bytes) -> bytes | None: ...


class Overlay:
    """A write buffer over ``parent``; ``None`` in ``writes`` marks a deletion."""

    __slots__ = ("parent", "writes")

    def __init__(self, parent: Reader) -> None:
        self.parent = parent
        self.writes: dict[tuple[bytes, bytes], bytes | None] = {}

    def get(self, table: bytes, key: bytes) -> bytes | None:
        try:
            return self.writes[(table, key)]
        except KeyError:
            return self.parent.get(table, key)

    def put(self, table: bytes, key: bytes, value: bytes) -> None:
        self.writes[(table, key)] = value

    def delete(self, table: bytes, key: bytes) -> None:
        self.writes[(table, key)] = None

    def merge_into_parent(self) -> None:
        """Publish these writes to the parent overlay (a transaction succeeded)."""
        parent = self.parent
        if not isinstance(parent, Overlay):
            raise InvariantError("only a child overlay can be merged")
        parent.writes.update(self.writes)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


def host_key(model_id: bytes, host: bytes) -> bytes:
    return bytes([len(model_id)]) + model_id + host


def role_key(role: int, address: bytes) -> bytes:
    return bytes([role]) + address


def checked_add(a: int, b: int) -> int:
    """``a + b`` that must stay in u64; the supply fits in u64, so this never fails
    on a consistent state and a failure means the state is broken."""
    s = a + b
    if s > U64_MAX:
        raise TxFailed(Code.OVERFLOW, f"amount overflow: {a} + {b}")
    return s


class State:
    """Typed records over a key-value view; every write goes to ``kv``."""

    __slots__ = ("kv",)

    def __init__(self, kv: Overlay) -> None:
        self.kv = kv

    # -- accounts -----------------------------------------------------------
    def account(self, address: bytes) -> Account | None:
        raw = self.kv.get(ACCOUNTS, address)
        return None if raw is None else Account.decode(raw)

    def put_account(self, address: bytes, account: Account) -> None:
        self.kv.put(ACCOUNTS, address, account.encode())

    def credit(self, address: bytes, amount: int) -> None:
        if amount == 0:
            return
        acct = self.account(address) or Account()
        self.put_account(address, acct.but(balance=checked_add(acct.balance, amount)))

    def debit(self, address: bytes, amount: int) -> None:
        acct = self.account(address) or Account()
        if acct.balance < amount:
            raise TxFailed(Code.INSUFFICIENT_FUNDS,
                           f"balance {acct.balance} < {amount} needed")
        if amount:
            self.put_account(address, acct.but(balance=acct.balance - amount))

    # -- models, hosts, roles, claims --------------------------------------
    def model(self, model_id: bytes) -> Model | None:
        raw = self.kv.get(MODELS, model_id)
        return None if raw is None else Model.decode(raw)

    def put_model(self, model: Model) -> None:
        self.kv.put(MODELS, model.model_id, model.encode())

    def host(self, model_id: bytes, host: bytes) -> HostRecord | None:
        raw = self.kv.get(HOSTS, host_key(model_id, host))
        return None if raw is None else HostRecord.decode(raw)

    def put_host(self, rec: HostRecord) -> None:
        self.kv.put(HOSTS, host_key(rec.model_id, rec.host), rec.encode())

    def role(self, role: int, address: bytes) -> RoleRecord | None:
        raw = self.kv.get(ROLES, role_key(role, address))
        return None if raw is None else RoleRecord.decode(raw)

    def put_role(self, rec: RoleRecord) -> None:
        self.kv.put(ROLES, role_key(rec.role, rec.address), rec.encode())

    def delete_role(self, role: int, address: bytes) -> None:
        self.kv.delete(ROLES, role_key(role, address))

    def claim(self, claim_id: int) -> Claim | None:
        raw = self.kv.get(CLAIMS, u64(claim_id))
        return None if raw is None else Claim.decode(raw)

    def put_claim(self, claim: Claim) -> None:
        self.kv.put(CLAIMS, u64(claim.claim_id), claim.encode())

    # -- burned fingerprint indices -----------------------------------------
    @staticmethod
    def _burn_key(model_id: bytes, host: bytes, generation: int, index: int) -> bytes:
        return host_key(model_id, host) + u64(generation) + struct.pack(">I", index)

    def is_burned(self, model_id: bytes, host: bytes, generation: int, index: int) -> bool:
        return self.kv.get(BURNED, self._burn_key(model_id, host, generation, index)) is not None

    def burn_index(self, model_id: bytes, host: bytes, generation: int, index: int,
                   claim_id: int) -> None:
        self.kv.put(BURNED, self._burn_key(model_id, host, generation, index), u64(claim_id))

    # -- claims due at a height (reveal deadline or end of challenge window) -
    def due(self, height: int) -> list[int]:
        raw = self.kv.get(DUE, u64(height))
        if raw is None:
            return []
        try:
            value = decode(raw)
        except DecodeError as exc:
            raise InvariantError(f"due list at {height} does not decode: {exc}") from None
        if not isinstance(value, list) or not all(isinstance(i, int) for i in value):
            raise InvariantError(f"due list at {height} is not a list of ints")
        return value  # type: ignore[return-value]

    def _put_due(self, height: int, ids: list[int]) -> None:
        if ids:
            self.kv.put(DUE, u64(height), encode(ids))
        else:
            self.kv.delete(DUE, u64(height))

    def add_due(self, height: int, claim_id: int) -> None:
        self._put_due(height, self.due(height) + [claim_id])

    def remove_due(self, height: int, claim_id: int) -> None:
        self._put_due(height, [i for i in self.due(height) if i != claim_id])

    def clear_due(self, height: int) -> None:
        if self.kv.get(DUE, u64(height)) is not None:
            self.kv.delete(DUE, u64(height))

    # -- counters -------------------------------------------------------------
    def meta_int(self, key: bytes) -> int:
        raw = self.kv.get(META, key)
        if raw is None:
            return 0
        if len(raw) != 8:
            raise InvariantError(f"meta {key!r} is not a u64")
        return int.from_bytes(raw, "big")

    def put_meta_int(self, key: bytes, value: int) -> None:
        self.kv.put(META, key, u64(value))

    def burn(self, amount: int) -> None:
        """Destroy ``amount`` (already taken out of some balance or escrow)."""
        if amount:
            self.put_meta_int(META_BURNED, checked_add(self.meta_int(META_BURNED), amount))

    def next_claim_id(self) -> int:
        claim_id = self.meta_int(META_NEXT_CLAIM)
        self.put_meta_int(META_NEXT_CLAIM, claim_id + 1)
        return claim_id


@dataclass(slots=True)
class Event:
    """Something a transaction or the end of a block did, for indexing and RPC."""

    type: str
    attrs: dict[str, str | int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "attributes": dict(self.attrs)}


@dataclass(slots=True)
class Ctx:
    """What a handler sees: state, params, the block header fields and the sender."""

    state: State
    params: Params
    chain_id: str
    height: int
    time_ms: int
    proposer: bytes
    sender: bytes = b""
    sender_pubkey: bytes = b""
    events: list[Event] = field(default_factory=list)

    def emit(self, type_: str, **attrs: str | int | bytes) -> None:
        self.events.append(Event(type_, {k: v.hex() if isinstance(v, bytes) else v
                                         for k, v in attrs.items()}))
