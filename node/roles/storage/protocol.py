"""Wire messages of ``/oml/blob/1`` (sans-IO): requests, replies, limits, error codes.

A fetcher opens a bulk stream (:meth:`net.Transport.open_stream`) to a
provider and sends requests, one frame each, in the canonical encoding of
``consensus.encoding``; the provider answers each request in order:

=================================  =============================================
request                            reply
=================================  =============================================
``[1, [blob_id, ...]]`` HAVE       one frame ``[[has_manifest, present, total],
                                   ...]``, one entry per id, in order
``[2, blob_id]`` MANIFEST          one frame: the manifest's canonical bytes
``[3, blob_id, start, count]``     ``count`` frames, each the raw bytes of chunk
CHUNKS                             ``start``, ``start + 1``, ... (unhashed DATA
                                   frames: the fetcher checks each chunk
                                   against the manifest, so the framing does
                                   not hash them a second time)
=================================  =============================================

A request the provider cannot answer (unknown blob, a chunk it lacks, a
malformed or over-limit request) ends the stream with an ERROR frame
carrying one of the ``ERR_*`` codes below; the fetcher gets it as
:class:`net.RemoteError` and maps it with :func:`remote_error`. Chunk replies
carry no header: their order is fixed by the request, and a chunk's length
and hash are fixed by the manifest, so a frame is either exactly the chunk
or evidence against the provider.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.encoding import (
    DecodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
)

from .errors import BlobNotFound, ChunkMissing, StorageError
from .manifest import MAX_CHUNK_SIZE, MAX_CHUNKS, MAX_MANIFEST_BYTES

PROTOCOL = "/oml/blob/1"

MAX_HAVE_IDS = 64
"""Blob ids in one HAVE request."""
MAX_RANGE_CHUNKS = 64
"""Chunks in one CHUNKS request (64 MiB of 1 MiB chunks)."""
MAX_REQUEST_BYTES = 8 * 1024
"""A request frame: a HAVE of 64 ids is about 2.2 KB."""
MAX_HAVE_REPLY_BYTES = 16 + MAX_HAVE_IDS * 16
MAX_FRAME_BYTES = max(MAX_CHUNK_SIZE, MAX_MANIFEST_BYTES) + 1024
"""Frame cap of the protocol's streams: the largest chunk or manifest."""

ID_SIZE = 32

# Error codes (net.HandlerError codes are 100..65535).
ERR_BAD_REQUEST = 400
"""Malformed request (not canonical, unknown type, bad field)."""
ERR_NOT_FOUND = 404
"""The provider has no manifest for the blob."""
ERR_CHUNK_MISSING = 416
"""The provider knows the blob but lacks a chunk of the range."""
ERR_TOO_LARGE = 413
"""Too many ids or chunks in one request."""
ERR_UNAVAILABLE = 503
"""The provider's own store failed (e.g. a chunk corrupt on its disk)."""

T_HAVE, T_MANIFEST, T_CHUNKS = 1, 2, 3


class BadMessage(StorageError):
    """Bytes on ``/oml/blob/1`` are not a valid message (a peer's fault)."""

    code = "bad_message"


class RequestTooLarge(BadMessage):
    """A request over the protocol's limits (too many ids or chunks)."""

    code = "too_large"


class RequestRejected(StorageError):
    """The provider refused our request as malformed or over its limits."""

    code = "bad_request"

    def __init__(self, remote_code: int, message: str) -> None:
        super().__init__(f"request rejected ({remote_code}): {message}")
        self.remote_code = remote_code


class ProviderFailed(StorageError):
    """The provider could not read its own copy of the data."""

    code = "provider_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Have:
    """Ask which of ``blob_ids`` the provider holds."""

    blob_ids: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.blob_ids) <= MAX_HAVE_IDS:
            raise RequestTooLarge(f"HAVE takes 1..{MAX_HAVE_IDS} ids, got {len(self.blob_ids)}")
        for blob_id in self.blob_ids:
            _check_id(blob_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetManifest:
    """Ask for a blob's manifest."""

    blob_id: bytes

    def __post_init__(self) -> None:
        _check_id(self.blob_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class GetChunks:
    """Ask for chunks ``start .. start + count - 1`` of a blob, in order."""

    blob_id: bytes
    start: int
    count: int

    def __post_init__(self) -> None:
        _check_id(self.blob_id)
        if not 0 <= self.start < MAX_CHUNKS:
            raise BadMessage(f"chunk index {self.start} out of range")
        if not 1 <= self.count <= MAX_RANGE_CHUNKS:
            raise RequestTooLarge(f"CHUNKS takes 1..{MAX_RANGE_CHUNKS} chunks, got {self.count}")


Request = Have | GetManifest | GetChunks


@dataclass(frozen=True, slots=True, kw_only=True)
class HaveEntry:
    """What a provider holds of one blob."""

    has_manifest: bool
    present: int
    """Chunks on the provider's disk."""
    total: int
    """Chunks in the blob (0 when the provider has no manifest)."""

    @property
    def complete(self) -> bool:
        return self.has_manifest and self.present == self.total


def _check_id(blob_id: object) -> None:
    if not isinstance(blob_id, bytes) or len(blob_id) != ID_SIZE:
        raise BadMessage(f"blob id must be {ID_SIZE} bytes")


def encode_request(request: Request) -> bytes:
    """Canonical bytes of a request (validated when it was built)."""
    if isinstance(request, Have):
        return encode([T_HAVE, list(request.blob_ids)])
    if isinstance(request, GetManifest):
        return encode([T_MANIFEST, request.blob_id])
    return encode([T_CHUNKS, request.blob_id, request.start, request.count])


def decode_request(data: bytes) -> Request:
    """Parse a request from a peer.

    Raises:
        RequestTooLarge: well formed but over the limits.
        BadMessage: anything else wrong.
    """
    try:
        value = expect_list(decode(data, MAX_REQUEST_BYTES), what="request")
        if not value:
            raise DecodeError("empty request")
        kind = expect_int(value[0], what="request type")
        if kind == T_HAVE:
            fields = expect_list(value, 2, what="HAVE")
            ids = expect_list(fields[1], what="ids")  # Have() checks the count
            return Have(blob_ids=tuple(expect_bytes(i, what="id", size=ID_SIZE) for i in ids))
        if kind == T_MANIFEST:
            fields = expect_list(value, 2, what="MANIFEST")
            return GetManifest(blob_id=expect_bytes(fields[1], what="id", size=ID_SIZE))
        if kind == T_CHUNKS:
            fields = expect_list(value, 4, what="CHUNKS")
            return GetChunks(
                blob_id=expect_bytes(fields[1], what="id", size=ID_SIZE),
                start=expect_int(fields[2], what="start"),
                count=expect_int(fields[3], what="count"),
            )
        raise DecodeError(f"unknown request type {kind}")
    except DecodeError as exc:
        raise BadMessage(str(exc)) from None


def encode_have_reply(entries: list[HaveEntry]) -> bytes:
    return encode([[int(e.has_manifest), e.present, e.total] for e in entries])


def decode_have_reply(data: bytes, expected: int) -> list[HaveEntry]:
    """Parse a HAVE reply for a request of ``expected`` ids.

    Raises:
        BadMessage: malformed, wrong number of entries, or inconsistent counts.
    """
    try:
        rows = expect_list(decode(data, MAX_HAVE_REPLY_BYTES), expected, what="HAVE reply")
        out = []
        for row in rows:
            has, present, total = expect_list(row, 3, what="HAVE entry")
            entry = HaveEntry(
                has_manifest=bool(expect_int(has, what="has_manifest", hi=1)),
                present=expect_int(present, what="present", hi=MAX_CHUNKS),
                total=expect_int(total, what="total", hi=MAX_CHUNKS),
            )
            if entry.present > entry.total or (not entry.has_manifest and entry.total):
                raise DecodeError("inconsistent HAVE entry")
            out.append(entry)
        return out
    except (DecodeError, ValueError) as exc:
        raise BadMessage(f"bad HAVE reply: {exc}") from None


def error_code(exc: StorageError) -> int:
    """The ``ERR_*`` code a provider answers for a storage error of its own."""
    if isinstance(exc, BlobNotFound):
        return ERR_NOT_FOUND
    if isinstance(exc, ChunkMissing):
        return ERR_CHUNK_MISSING
    if isinstance(exc, RequestTooLarge):
        return ERR_TOO_LARGE
    if isinstance(exc, BadMessage):
        return ERR_BAD_REQUEST
    return ERR_UNAVAILABLE


def remote_error(code: int, message: str) -> StorageError:
    """The typed error for an ERROR frame from a provider.

    Unknown codes (and the provider's own failures) become
    :class:`ProviderFailed`; a provider whose chunk on disk was corrupt is
    not to blame for it, and that is not :class:`BadChunk`.
    """
    if code == ERR_NOT_FOUND:
        return BlobNotFound(message)
    if code == ERR_CHUNK_MISSING:
        return ChunkMissing(message)
    if code in (ERR_BAD_REQUEST, ERR_TOO_LARGE):
        return RequestRejected(code, message)
    return ProviderFailed(f"provider error {code}: {message}")
