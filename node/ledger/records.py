"""Stored records: accounts, models, host records, role bonds and claims.

Each record is a frozen dataclass with field specs (see :mod:`.schema`) and
is stored as the canonical encoding of its field array. A stored record
that does not decode is a broken invariant (:class:`InvariantError`), not a
peer's fault: only the ledger ever writes these bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

import msgpack

from consensus.encoding import DecodeError
from oml.commitments import normalize_text

from .errors import InvariantError
from .schema import (
    ADDRESS,
    BASIS_POINTS,
    HASH,
    MODEL_ID,
    OPT_BLOB_ID,
    OPT_PUBKEY,
    U64,
    Bytes,
    ListOf,
    Pair,
    Schema,
    Spec,
    Text,
    Tuple,
    UInt,
    layout,
)
from .txs import (
    FP_INDEX,
    MAX_CLAIM_ITEMS,
    MAX_ENDPOINT,
    MAX_KEY_TEXT,
    MAX_LIST,
    MAX_METADATA,
    MAX_OUTPUT_TEXT,
    MAX_RESPONSE_TEXT,
)


class HostStatus(IntEnum):
    PENDING = 1      # collateral locked, waiting for the OMLizer's commitment
    ACTIVE = 2       # fingerprinted copy committed; may serve and be claimed against
    UNBONDING = 3    # withdrawal begun; still slashable, can no longer fund its channel
    WITHDRAWN = 4    # collateral and escrow returned; may request access again


class ClaimStatus(IntEnum):
    COMMITTED = 1    # hiding commitment in a block; waiting for the prover to open it
    OPEN = 2         # opened: items public, waiting for the OMLizer's reveals
    MATCHED = 3      # enough items matched; slashed at the window's end unless rebutted
    SLASHED = 4      # final: host slashed, prover paid
    FALSE = 5        # final: too few items matched; prover's bond burned
    DISMISSED = 6    # final: host showed a permission string; bond refunded
    EXPIRED = 7      # final: reveals missing at the deadline; bond refunded (+ OMLizer penalty)
    LAPSED = 8       # final: never opened within claim_open_window; bond burned

    @property
    def open(self) -> bool:
        """Not decided yet: the claim holds its bond and blocks the host's withdrawal."""
        return self in (ClaimStatus.COMMITTED, ClaimStatus.OPEN, ClaimStatus.MATCHED)


class ItemState(IntEnum):
    PENDING = 0      # not revealed yet
    MATCHED = 1      # revealed key is the claimed key, output starts with the response
    MISMATCHED = 2   # the leaf opened to another key or a response the output lacks


class Record(Schema):
    __slots__ = ()

    # Records are written only by the ledger, after their specs checked every
    # field, so they skip the canonical re-encoding check that untrusted
    # input gets: plain msgpack produces the same bytes for this value space.

    def encode(self) -> bytes:
        return msgpack.packb(self.to_value(), use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        try:
            return cls.from_value(msgpack.unpackb(data, raw=True, use_list=True))
        except (DecodeError, ValueError, TypeError, msgpack.UnpackException) as exc:
            raise InvariantError(f"stored {cls.__name__} does not decode: {exc}") from None

    def but(self, **changes: Any) -> Self:
        """A copy with ``changes`` (records are immutable; changed fields are checked)."""
        cls = type(self)
        new = object.__new__(cls)
        for name, spec in layout(cls):
            if name in changes:
                value = changes.pop(name)
                try:
                    checked = spec.dec(spec.enc(value), f"{cls.__name__}.{name}")
                except (DecodeError, AttributeError, TypeError) as exc:
                    raise InvariantError(f"invalid {cls.__name__}.{name}: {exc}") from None
                object.__setattr__(new, name, checked)
            else:
                object.__setattr__(new, name, getattr(self, name))
        if changes:
            raise TypeError(f"{cls.__name__} has no fields {sorted(changes)}")
        return new


@dataclass(frozen=True, slots=True, kw_only=True)
class Account(Record):
    """A balance and the next nonce. ``pub_key`` is the Ed25519 key whose
    address this is, recorded when the account first has a transaction
    applied (empty until then: genesis and transfers know only the
    address), so anyone can encrypt to an account named by its address."""

    SPECS: ClassVar[dict[str, Spec]] = {"balance": U64, "nonce": U64, "pub_key": OPT_PUBKEY}
    balance: int = 0
    nonce: int = 0
    pub_key: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Model(Record):
    """A registered model. ``depth`` is the length of its parent chain;
    ``blob_id`` is the storage blob of its base weights (empty: none)."""

    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "owner": ADDRESS, "owner_pubkey": HASH, "weights_hash": HASH,
        "metadata": Bytes(0, MAX_METADATA), "price_per_query": U64, "min_collateral": U64,
        "omlizers": ListOf(ADDRESS, MAX_LIST),
        "splits": ListOf(Pair(ADDRESS, BASIS_POINTS), MAX_LIST), "parent": Bytes(0, 64),
        "royalty_bp": BASIS_POINTS, "depth": U64, "registered_height": U64,
        "blob_id": OPT_BLOB_ID
    }
    model_id: bytes
    owner: bytes
    owner_pubkey: bytes
    weights_hash: bytes
    metadata: bytes
    price_per_query: int
    min_collateral: int
    omlizers: tuple[bytes, ...]
    splits: tuple[tuple[bytes, int], ...]
    parent: bytes
    royalty_bp: int
    depth: int
    registered_height: int
    blob_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRecord(Record):
    """One host's access to one model: collateral, fee channel, fingerprint commitment.

    ``generation`` counts access grants of this (model, host) pair; burned
    fingerprint indices are kept per generation, so a host that withdrew
    and came back gets a fresh commitment with a fresh index space.
    ``package_blob`` is the storage blob of the committed package, encrypted
    to the host (empty until the commitment, and again after a re-grant).
    """

    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "host": ADDRESS, "host_pubkey": HASH, "status": UInt(1, 4),
        "endpoint": Text(MAX_ENDPOINT), "collateral": U64, "escrow": U64,
        "redeemed_amount": U64, "redeemed_count": U64, "omlizer": Bytes(0, 20),
        "package_hash": Bytes(0, 32), "fp_root": Bytes(0, 32), "fp_count": U64,
        "generation": U64, "open_claims": U64, "unbonding_height": U64,
        "slashed_total": U64, "package_blob": OPT_BLOB_ID
    }
    model_id: bytes
    host: bytes
    host_pubkey: bytes
    status: int
    endpoint: str = ""
    collateral: int = 0
    escrow: int = 0
    redeemed_amount: int = 0
    redeemed_count: int = 0
    omlizer: bytes = b""
    package_hash: bytes = b""
    fp_root: bytes = b""
    fp_count: int = 0
    generation: int = 0
    open_claims: int = 0
    unbonding_height: int = 0
    slashed_total: int = 0
    package_blob: bytes = b""

    def to_json(self) -> dict[str, Any]:
        out = Schema.to_json(self)
        out["status"] = HostStatus(self.status).name.lower()
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleRecord(Record):
    """A role bond. ``committed_hosts`` (OMLizers only) counts host records this
    OMLizer committed that are not withdrawn yet: it owes their reveals."""

    SPECS: ClassVar[dict[str, Spec]] = {
        "role": UInt(1, 2), "address": ADDRESS, "bond": U64, "committed_hosts": U64
    }
    role: int
    address: bytes
    bond: int
    committed_hosts: int = 0


#: A claim item as stored: ``[fp_index, key, output, state, response]``.
CLAIM_ITEM_RECORD = Tuple(FP_INDEX, Text(MAX_KEY_TEXT), Text(MAX_OUTPUT_TEXT), UInt(0, 2),
                          Text(MAX_RESPONSE_TEXT))


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim(Record):
    """A prover's two-phase claim and its progress.

    ``items`` are empty until the claim is opened; each item's state and
    revealed response are filled in by the reveals. ``decided_height`` is
    the height the claim became MATCHED (its challenge window runs from
    there) or reached a final status.
    """

    SPECS: ClassVar[dict[str, Spec]] = {
        "claim_id": U64, "model_id": MODEL_ID, "host": ADDRESS, "generation": U64,
        "prover": ADDRESS, "bond": U64, "status": UInt(1, 8), "commitment": HASH,
        "committed_height": U64, "opened_height": U64, "decided_height": U64,
        "items": ListOf(CLAIM_ITEM_RECORD, MAX_CLAIM_ITEMS)
    }
    claim_id: int
    model_id: bytes
    host: bytes
    generation: int
    prover: bytes
    bond: int
    status: int
    commitment: bytes
    committed_height: int
    opened_height: int = 0
    decided_height: int = 0
    items: tuple[tuple[int, str, str, int, str], ...] = ()

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(item[0] for item in self.items)

    def item(self, fp_index: int) -> tuple[int, str, str, int, str] | None:
        """The claimed item at ``fp_index``, or None if the claim does not name it."""
        return next((it for it in self.items if it[0] == fp_index), None)

    def count(self, state: ItemState) -> int:
        return sum(1 for it in self.items if it[3] == state)

    def to_json(self) -> dict[str, Any]:
        out = Schema.to_json(self)
        out["status"] = ClaimStatus(self.status).name.lower()
        out["items"] = [{"fp_index": i, "key": k, "output": o,
                         "state": ItemState(st).name.lower(), "response": r}
                        for i, k, o, st, r in self.items]
        out["matches"] = len({normalize_text(k) for _i, k, _o, st, _r in self.items
                              if st == ItemState.MATCHED})
        return out
