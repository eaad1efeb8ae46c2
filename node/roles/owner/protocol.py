"""Wire messages of ``/oml/permission/1`` (sans-IO): request, grant, limits, refusal codes.

A host that serves a model asks the model's owner, one batch of queries at a
time, for the permission strings that let it answer them (and later rebut a
claim). One request/response exchange per batch over
:meth:`net.Transport.request`; both sides encode with ``consensus.encoding``:

==========================================================  =====================
request (host -> owner)                                     grant (owner -> host)
==========================================================  =====================
``[1, model_id, host, first_seq, [qhash, ...],              ``[1, issued_height,
cumulative_count, cumulative_amount, voucher_signature]``   [sig, ...]]``
==========================================================  =====================

* The batch covers the host's sequence numbers ``first_seq .. first_seq + n -
  1`` for ``model_id`` and ``cumulative_count == first_seq + n``: the voucher
  it carries (:func:`node.ledger.vouchers.sign_voucher`, by the host key) is
  the host's new cumulative debt, so the owner always holds exactly one
  voucher per (model, host): the latest.
* The grant holds one signature per query hash, in order: the owner's
  permission (:func:`node.ledger.vouchers.permission_body`) for ``(model_id,
  host, first_seq + i, qhash[i], issued_height)``, which
  :func:`node.ledger.vouchers.verify_permission` accepts.

A refusal is a :class:`net.HandlerError` with one of the ``ERR_*`` codes
below (the host sees :class:`net.RemoteError` with the same code); a refusal
means nothing was signed and the owner's stored voucher did not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from consensus.crypto import ADDRESS_SIZE, SIGNATURE_SIZE
from consensus.encoding import (
    U64_MAX,
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)

PROTOCOL = "/oml/permission/1"
VERSION = 1

MAX_BATCH = 256
"""Query hashes in one request (and signatures in one grant)."""
HASH_SIZE = 32
MAX_MODEL_ID = 64
MAX_REQUEST_BYTES = 1024 + MAX_BATCH * (HASH_SIZE + 3)
"""A full request: 256 hashes (~8.9 KB) plus the fixed fields."""
MAX_GRANT_BYTES = 64 + MAX_BATCH * (SIGNATURE_SIZE + 3)


class Refusal(IntEnum):
    """Typed refusal codes (``net.HandlerError`` codes are 100..65535)."""

    BAD_REQUEST = 100
    """Malformed or over the limits: fix the request."""
    NOT_OWNER = 101
    """This node's account does not own the model (or its owner role is off)."""
    HOST_NOT_ACTIVE = 102
    """No active access: pending, unbonding/withdrawing, withdrawn or unknown."""
    BAD_VOUCHER = 103
    """Signature invalid or not the host's, or amount != price x count."""
    VOUCHER_STALE = 104
    """first_seq/cumulative_count do not follow the owner's latest voucher;
    the message carries the owner's latest count (see :func:`stale_message`)."""
    ESCROW_EXHAUSTED = 105
    """The unredeemed amount would exceed the host's escrow left on chain."""
    CLAIM_PENDING = 106
    """A claim in the owner's mempool names one of these query hashes."""
    RATE_LIMITED = 107
    """Too many requests from this host: retry later."""


class PermissionProtocolError(Exception):
    """Bytes on ``/oml/permission/1`` are not a valid message, or a field is invalid."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionRequest:
    """A host's batch: query hashes for seqs ``first_seq..`` plus its new cumulative voucher."""

    model_id: bytes
    host: bytes
    first_seq: int
    query_hashes: tuple[bytes, ...]
    cumulative_count: int
    cumulative_amount: int
    voucher_signature: bytes

    def __post_init__(self) -> None:
        _check_bytes(self.model_id, "model_id", lo=1, hi=MAX_MODEL_ID)
        _check_bytes(self.host, "host", lo=ADDRESS_SIZE, hi=ADDRESS_SIZE)
        _check_bytes(self.voucher_signature, "voucher_signature",
                     lo=SIGNATURE_SIZE, hi=SIGNATURE_SIZE)
        for name in ("first_seq", "cumulative_count", "cumulative_amount"):
            _check_u64(getattr(self, name), name)
        if not isinstance(self.query_hashes, tuple) \
                or not 1 <= len(self.query_hashes) <= MAX_BATCH:
            raise PermissionProtocolError(f"a batch holds 1..{MAX_BATCH} query hashes")
        for qhash in self.query_hashes:
            _check_bytes(qhash, "query hash", lo=HASH_SIZE, hi=HASH_SIZE)
        if self.cumulative_count != self.first_seq + len(self.query_hashes):
            raise PermissionProtocolError(
                f"cumulative_count {self.cumulative_count} != first_seq {self.first_seq}"
                f" + {len(self.query_hashes)} queries")

    @property
    def seqs(self) -> range:
        """The sequence numbers this batch covers, in order."""
        return range(self.first_seq, self.cumulative_count)


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionGrant:
    """The owner's answer: one permission signature per query hash, all dated ``issued_height``."""

    issued_height: int
    signatures: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _check_u64(self.issued_height, "issued_height")
        if not isinstance(self.signatures, tuple) \
                or not 1 <= len(self.signatures) <= MAX_BATCH:
            raise PermissionProtocolError(f"a grant holds 1..{MAX_BATCH} signatures")
        for sig in self.signatures:
            _check_bytes(sig, "signature", lo=SIGNATURE_SIZE, hi=SIGNATURE_SIZE)


def _check_bytes(value: object, what: str, *, lo: int, hi: int) -> None:
    if not isinstance(value, bytes) or not lo <= len(value) <= hi:
        size = str(lo) if lo == hi else f"{lo}..{hi}"
        raise PermissionProtocolError(f"{what} must be {size} bytes")


def _check_u64(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise PermissionProtocolError(f"{what} must be an unsigned 64-bit int")


def encode_request(request: PermissionRequest) -> bytes:
    """Canonical bytes of a request (validated when it was built)."""
    return encode([VERSION, request.model_id, request.host, request.first_seq,
                   list(request.query_hashes), request.cumulative_count,
                   request.cumulative_amount, request.voucher_signature])


def decode_request(data: bytes) -> PermissionRequest:
    """Parse a host's request.

    Raises:
        PermissionProtocolError: not canonical, wrong version or shape, a field
            out of range, or over :data:`MAX_BATCH` (the owner answers
            ``BAD_REQUEST``).
    """
    try:
        fields = expect_list(decode(data, MAX_REQUEST_BYTES), 8, what="permission request")
        expect_int(fields[0], what="version", lo=VERSION, hi=VERSION)
        hashes = expect_list(fields[4], what="query hashes", max_length=MAX_BATCH)
        return PermissionRequest(
            model_id=expect_bytes(fields[1], what="model_id"),
            host=expect_bytes(fields[2], what="host"),
            first_seq=expect_int(fields[3], what="first_seq"),
            query_hashes=tuple(expect_bytes(h, what="query hash") for h in hashes),
            cumulative_count=expect_int(fields[5], what="cumulative_count"),
            cumulative_amount=expect_int(fields[6], what="cumulative_amount"),
            voucher_signature=expect_bytes(fields[7], what="voucher_signature"),
        )
    except DecodeError as exc:
        raise PermissionProtocolError(str(exc)) from None


def encode_grant(grant: PermissionGrant) -> bytes:
    return encode([VERSION, grant.issued_height, list(grant.signatures)])


def decode_grant(data: bytes, expected: int | None = None) -> PermissionGrant:
    """Parse the owner's grant; ``expected`` is the number of query hashes asked for.

    Raises:
        PermissionProtocolError: malformed, or not exactly ``expected`` signatures.
    """
    try:
        fields = expect_list(decode(data, MAX_GRANT_BYTES), 3, what="permission grant")
        expect_int(fields[0], what="version", lo=VERSION, hi=VERSION)
        sigs = expect_list(fields[2], expected, what="signatures", max_length=MAX_BATCH)
        return PermissionGrant(
            issued_height=expect_int(fields[1], what="issued_height"),
            signatures=tuple(expect_bytes(s, what="signature") for s in sigs),
        )
    except DecodeError as exc:
        raise PermissionProtocolError(str(exc)) from None


STALE_PREFIX = "owner's latest cumulative_count="


def stale_message(latest_count: int, detail: str = "") -> str:
    """The VOUCHER_STALE message: machine-readable latest count first, then a detail."""
    return f"{STALE_PREFIX}{latest_count}" + (f"; {detail}" if detail else "")


def parse_stale_message(message: str) -> int | None:
    """The owner's latest cumulative_count from a VOUCHER_STALE message, or None."""
    if not message.startswith(STALE_PREFIX):
        return None
    digits = message[len(STALE_PREFIX):].split(";", 1)[0].strip()
    return int(digits) if digits.isdigit() else None
