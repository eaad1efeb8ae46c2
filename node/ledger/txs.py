"""Transactions: the signed envelope and one frozen body dataclass per kind.

Wire format (canonical msgpack, see :mod:`consensus.encoding`)::

    tx       = [unsigned, signature]
    unsigned = encode([chain_id, sender_pubkey, nonce, kind, body])

``signature`` is the sender's Ed25519 signature over
``sign_bytes(b"oml/tx/v1", chain_id, unsigned)``. Carrying the signed bytes
verbatim means a verifier checks the signature on exactly what arrived,
without re-encoding, and a body can never be re-interpreted after signing.
The transaction hash is SHA-256 of the whole ``tx``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

import msgpack

from consensus.crypto import PrivateKey, Signer, address_of, verify
from consensus.encoding import encode

from .errors import Code, TxDecodeError
from .schema import (
    ADDRESS,
    BASIS_POINTS,
    BLOB_ID,
    HASH,
    MODEL_ID,
    OPT_BLOB_ID,
    U64,
    Bytes,
    ListOf,
    Pair,
    Schema,
    Spec,
    Text,
    Tuple,
    UInt,
    to_json_value,
)

TX_DOMAIN = b"oml/tx/v1"
MAX_TX_BYTES = 64 * 1024
MAX_CHAIN_ID = 50
MAX_METADATA = 4096
MAX_ENDPOINT = 256
MAX_KEY_TEXT = 4096
MAX_OUTPUT_TEXT = 16 * 1024
MAX_RESPONSE_TEXT = 4096
MAX_SALT = 64
MAX_PATH = 64
MAX_LIST = 256
MAX_CLAIM_ITEMS = 64  # most fingerprint indices one claim may name
CLAIM_SALT = 32
FP_INDEX = UInt(0, 2**32 - 1)
#: One claimed observation: ``[fp_index, key, output]``.
CLAIM_ITEM = Tuple(FP_INDEX, Text(MAX_KEY_TEXT), Text(MAX_OUTPUT_TEXT))


class Kind(IntEnum):
    """Transaction kinds; the value is the wire tag."""

    TRANSFER = 1
    REGISTER_MODEL = 2
    UPDATE_MODEL = 3
    REGISTER_ROLE = 4
    REQUEST_ACCESS = 5
    COMMIT_OMLIZATION = 6
    FUND_CHANNEL = 7
    REDEEM = 8
    # 9 was the single-key ``submit_claim``, replaced by the two phases below.
    REVEAL = 10
    REBUT = 11
    BEGIN_WITHDRAWAL = 12
    COMPLETE_WITHDRAWAL = 13
    UNREGISTER_ROLE = 14
    COMMIT_CLAIM = 15
    OPEN_CLAIM = 16


class Role(IntEnum):
    OMLIZER = 1
    PROVER = 2


SPLITS = ListOf(Pair(ADDRESS, BASIS_POINTS), MAX_LIST)
ADDRESSES = ListOf(ADDRESS, MAX_LIST)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferBody(Schema):
    KIND: ClassVar[Kind] = Kind.TRANSFER
    SPECS: ClassVar[dict[str, Spec]] = {"to": ADDRESS, "amount": U64}
    to: bytes
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterModelBody(Schema):
    """Register a model. ``parent`` is empty for an original model.

    ``royalty_bp`` is the share of redemption revenue that models derived
    from this one pay to it (set by this model's owner, not the child's).
    ``blob_id`` names the storage blob holding the base weights, encrypted to
    the authorised OMLizers (empty: not published through storage yet);
    storage peers replicate it while the chain references it.
    """

    KIND: ClassVar[Kind] = Kind.REGISTER_MODEL
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "weights_hash": HASH, "metadata": Bytes(0, MAX_METADATA),
        "price_per_query": U64, "min_collateral": U64, "omlizers": ADDRESSES,
        "splits": SPLITS, "parent": Bytes(0, 64), "royalty_bp": BASIS_POINTS,
        "blob_id": OPT_BLOB_ID
    }
    model_id: bytes
    weights_hash: bytes
    metadata: bytes = b""
    price_per_query: int = 0
    min_collateral: int = 0
    omlizers: tuple[bytes, ...] = ()
    splits: tuple[tuple[bytes, int], ...] = ()
    parent: bytes = b""
    royalty_bp: int = 0
    blob_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateModelBody(Schema):
    """Replace all of a model's mutable terms (weights hash and parent are fixed).

    ``blob_id`` is a term like the others: the same weights may be re-published
    as a new blob (e.g. encrypted to a changed ``omlizers`` set), so the blob id
    may change while the weights hash may not. Empty clears it. A body is a
    full replacement: a client that means "keep" sends the current value.
    """

    KIND: ClassVar[Kind] = Kind.UPDATE_MODEL
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "metadata": Bytes(0, MAX_METADATA), "price_per_query": U64,
        "min_collateral": U64, "omlizers": ADDRESSES, "splits": SPLITS,
        "royalty_bp": BASIS_POINTS, "blob_id": OPT_BLOB_ID
    }
    model_id: bytes
    metadata: bytes = b""
    price_per_query: int = 0
    min_collateral: int = 0
    omlizers: tuple[bytes, ...] = ()
    splits: tuple[tuple[bytes, int], ...] = ()
    royalty_bp: int = 0
    blob_id: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterRoleBody(Schema):
    """Register as OMLizer or prover, or add ``bond`` to an existing registration."""

    KIND: ClassVar[Kind] = Kind.REGISTER_ROLE
    SPECS: ClassVar[dict[str, Spec]] = {"role": UInt(1, 2), "bond": U64}
    role: int
    bond: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UnregisterRoleBody(Schema):
    """Leave a role and take the whole bond back."""

    KIND: ClassVar[Kind] = Kind.UNREGISTER_ROLE
    SPECS: ClassVar[dict[str, Spec]] = {"role": UInt(1, 2)}
    role: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestAccessBody(Schema):
    KIND: ClassVar[Kind] = Kind.REQUEST_ACCESS
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "collateral": U64, "endpoint": Text(MAX_ENDPOINT)
    }
    model_id: bytes
    collateral: int
    endpoint: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitOmlizationBody(Schema):
    """The OMLizer commits the package it made for ``host``.

    ``package_blob`` is the storage blob of that package encrypted to the host
    (required: a commitment the host cannot fetch is useless). It is not
    derivable from ``package_hash``, which covers the plaintext package.
    """

    KIND: ClassVar[Kind] = Kind.COMMIT_OMLIZATION
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "host": ADDRESS, "package_hash": HASH, "fp_root": HASH,
        "fp_count": UInt(1, 2**32), "package_blob": BLOB_ID
    }
    model_id: bytes
    host: bytes
    package_hash: bytes
    fp_root: bytes
    fp_count: int
    package_blob: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FundChannelBody(Schema):
    KIND: ClassVar[Kind] = Kind.FUND_CHANNEL
    SPECS: ClassVar[dict[str, Spec]] = {"model_id": MODEL_ID, "amount": U64}
    model_id: bytes
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemBody(Schema):
    """The owner cashes the host's voucher (its fields and the host's signature)."""

    KIND: ClassVar[Kind] = Kind.REDEEM
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "host": ADDRESS, "cumulative_count": U64,
        "cumulative_amount": U64, "signature": Bytes(64, 64)
    }
    model_id: bytes
    host: bytes
    cumulative_count: int
    cumulative_amount: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitClaimBody(Schema):
    """Phase one of a claim: a hash that hides which keys ``host`` answered, and how.

    ``commitment`` is :func:`node.ledger.claimhash.claim_commitment` of the
    items and a 32-byte salt the prover keeps until it opens the claim. The
    keys stay secret until the commitment is in a block, so a host cannot buy
    permissions for exactly the claimed queries in between (rebuttals count
    only with permissions issued before the commitment's height).
    """

    KIND: ClassVar[Kind] = Kind.COMMIT_CLAIM
    SPECS: ClassVar[dict[str, Spec]] = {
        "model_id": MODEL_ID, "host": ADDRESS, "commitment": HASH, "bond": U64
    }
    model_id: bytes
    host: bytes
    commitment: bytes
    bond: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenClaimBody(Schema):
    """Phase two: the prover shows the committed items ``(fp_index, key, output)`` and salt."""

    KIND: ClassVar[Kind] = Kind.OPEN_CLAIM
    SPECS: ClassVar[dict[str, Spec]] = {
        "claim_id": U64, "items": ListOf(CLAIM_ITEM, MAX_CLAIM_ITEMS),
        "salt": Bytes(CLAIM_SALT, CLAIM_SALT)
    }
    claim_id: int
    items: tuple[tuple[int, str, str], ...]
    salt: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RevealBody(Schema):
    """The OMLizer opens leaf ``fp_index`` (one of the claim's items) of the host's commitment.

    ``key`` is the committed key of that leaf: if it differs from the key the
    prover claimed, the leaf still opens and the item is shown not to match
    (so a prover cannot burn indices for free with made-up keys).
    """

    KIND: ClassVar[Kind] = Kind.REVEAL
    SPECS: ClassVar[dict[str, Spec]] = {
        "claim_id": U64, "fp_index": FP_INDEX, "salt": Bytes(0, MAX_SALT),
        "key": Text(MAX_KEY_TEXT), "response": Text(MAX_RESPONSE_TEXT),
        "path": ListOf(HASH, MAX_PATH)
    }
    claim_id: int
    fp_index: int
    salt: bytes
    key: str
    response: str
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RebutBody(Schema):
    """The host shows the owner's permission string ``(seq, issued_height, signature)``
    for the key the claim names at ``fp_index``; ``issued_height`` must be below the
    height at which the claim was committed."""

    KIND: ClassVar[Kind] = Kind.REBUT
    SPECS: ClassVar[dict[str, Spec]] = {"claim_id": U64, "fp_index": FP_INDEX, "seq": U64,
                                        "issued_height": U64, "signature": Bytes(64, 64)}
    claim_id: int
    fp_index: int
    seq: int
    issued_height: int
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BeginWithdrawalBody(Schema):
    KIND: ClassVar[Kind] = Kind.BEGIN_WITHDRAWAL
    SPECS: ClassVar[dict[str, Spec]] = {"model_id": MODEL_ID}
    model_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteWithdrawalBody(Schema):
    KIND: ClassVar[Kind] = Kind.COMPLETE_WITHDRAWAL
    SPECS: ClassVar[dict[str, Spec]] = {"model_id": MODEL_ID}
    model_id: bytes


Body = (TransferBody | RegisterModelBody | UpdateModelBody | RegisterRoleBody
        | RequestAccessBody | CommitOmlizationBody | FundChannelBody | RedeemBody
        | CommitClaimBody | OpenClaimBody | RevealBody | RebutBody | BeginWithdrawalBody
        | CompleteWithdrawalBody | UnregisterRoleBody)

BODY_TYPES: dict[Kind, type] = {cls.KIND: cls for cls in (
    TransferBody, RegisterModelBody, UpdateModelBody, RegisterRoleBody, RequestAccessBody,
    CommitOmlizationBody, FundChannelBody, RedeemBody, CommitClaimBody, OpenClaimBody,
    RevealBody, RebutBody, BeginWithdrawalBody, CompleteWithdrawalBody, UnregisterRoleBody)}


@dataclass(frozen=True, slots=True)
class Tx:
    """A decoded transaction. ``unsigned`` holds the exact signed bytes."""

    chain_id: str
    sender_pubkey: bytes
    nonce: int
    body: Body
    signature: bytes
    unsigned: bytes
    hash: bytes
    sender: bytes  # address of sender_pubkey

    @property
    def kind(self) -> Kind:
        return self.body.KIND

    def verify_signature(self) -> bool:
        return verify(self.sender_pubkey, TX_DOMAIN, self.chain_id, self.unsigned,
                      self.signature)

    def to_json(self) -> dict[str, object]:
        return {"hash": self.hash.hex(), "chain_id": self.chain_id,
                "sender": self.sender.hex(), "sender_pubkey": self.sender_pubkey.hex(),
                "nonce": self.nonce, "kind": self.kind.name.lower(),
                "body": to_json_value(self.body), "signature": self.signature.hex()}


def tx_hash(raw: bytes) -> bytes:
    """The transaction hash: SHA-256 of the transaction's bytes."""
    return hashlib.sha256(raw).digest()


def _canonical_unpack(data: bytes) -> object:
    """Unpack msgpack and insist the bytes are the canonical encoding.

    Like :func:`consensus.encoding.decode` minus its value-type walk: every
    field of a transaction then goes through a spec that accepts only ints,
    bytes and arrays, which rejects the same things (nil, bool, float, str
    and maps never pass a spec) at a third of the cost on the hot path.
    """
    try:
        value = msgpack.unpackb(data, raw=True, use_list=True, strict_map_key=True,
                                max_bin_len=len(data), max_str_len=len(data),
                                max_array_len=len(data), max_map_len=len(data),
                                max_ext_len=len(data))
        again = msgpack.packb(value, use_bin_type=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises many unrelated types
        raise TxDecodeError(f"tx: malformed msgpack: {type(exc).__name__}: {exc}") from None
    if again != data:
        raise TxDecodeError("tx: non-canonical encoding")
    return value


def decode_tx(raw: bytes) -> Tx:
    """Parse untrusted transaction bytes (the signature is *not* checked here).

    Raises:
        TxDecodeError: too large (code ``TOO_LARGE``), not canonical, wrong
            field types or counts, extra fields, unknown kind.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TxDecodeError("transaction must be bytes")
    raw = bytes(raw)
    if len(raw) > MAX_TX_BYTES:
        raise TxDecodeError(f"transaction of {len(raw)} bytes exceeds {MAX_TX_BYTES}",
                            Code.TOO_LARGE)
    if not raw:
        raise TxDecodeError("tx: empty input")
    outer = _canonical_unpack(raw)
    if not isinstance(outer, list) or len(outer) != 2:
        raise TxDecodeError("tx: expected [unsigned, signature]")
    unsigned, signature = outer
    if not isinstance(unsigned, bytes) or not isinstance(signature, bytes):
        raise TxDecodeError("tx: unsigned part and signature must be bytes")
    if len(signature) != 64:
        raise TxDecodeError("tx: signature must be 64 bytes")
    if not unsigned:
        raise TxDecodeError("tx: empty unsigned part")
    inner = _canonical_unpack(unsigned)
    if not isinstance(inner, list) or len(inner) != 5:
        raise TxDecodeError("tx: expected [chain_id, sender_pubkey, nonce, kind, body]")
    chain_raw, pubkey, nonce, kind, body = inner
    chain_id = Text(MAX_CHAIN_ID, 1).dec(chain_raw, "tx.chain_id")
    pubkey = Bytes(32, 32).dec(pubkey, "tx.sender_pubkey")
    nonce = U64.dec(nonce, "tx.nonce")
    kind = U64.dec(kind, "tx.kind")
    if kind not in BODY_TYPES:
        raise TxDecodeError(f"tx.kind: unknown kind {kind}")
    body_obj = BODY_TYPES[Kind(kind)].from_value(body, Kind(kind).name.lower())
    return Tx(chain_id=chain_id, sender_pubkey=pubkey, nonce=nonce, body=body_obj,
              signature=signature, unsigned=unsigned, hash=tx_hash(raw),
              sender=address_of(pubkey))


def encode_unsigned(chain_id: str, sender_pubkey: bytes, nonce: int, body: Body) -> bytes:
    return encode([chain_id.encode("utf-8"), sender_pubkey, nonce, int(body.KIND),
                   body.to_value()])


def build_tx(key: PrivateKey | Signer, chain_id: str, nonce: int, body: Body) -> bytes:
    """Build and sign a transaction (client side: CLI, services, tests).

    ``key`` may be a :class:`PrivateKey` or a :class:`Signer` (faster in loops).
    """
    signer = key if isinstance(key, Signer) else Signer(key)
    unsigned = encode_unsigned(chain_id, signer.public_key, nonce, body)
    signature = signer.sign(TX_DOMAIN, chain_id, unsigned)
    return encode([unsigned, signature])
