"""/oml/blob/1 message codecs (sans-IO): round trips, limits, malformed input."""

from __future__ import annotations

import pytest

from consensus.encoding import encode
from node.roles.storage.errors import BlobNotFound, ChunkMissing, StorageError
from node.roles.storage.protocol import (
    ERR_BAD_REQUEST,
    ERR_CHUNK_MISSING,
    ERR_NOT_FOUND,
    ERR_TOO_LARGE,
    ERR_UNAVAILABLE,
    MAX_HAVE_IDS,
    MAX_RANGE_CHUNKS,
    BadMessage,
    GetChunks,
    GetManifest,
    Have,
    HaveEntry,
    ProviderFailed,
    RequestRejected,
    RequestTooLarge,
    decode_have_reply,
    decode_request,
    encode_have_reply,
    encode_request,
    error_code,
    remote_error,
)

ID = bytes(range(32))


@pytest.mark.parametrize(
    "request_",
    [
        Have(blob_ids=(ID,)),
        Have(blob_ids=(ID,) * MAX_HAVE_IDS),
        GetManifest(blob_id=ID),
        GetChunks(blob_id=ID, start=7, count=MAX_RANGE_CHUNKS),
    ],
)
def test_requests_round_trip(request_: Have | GetManifest | GetChunks) -> None:
    assert decode_request(encode_request(request_)) == request_


def test_requests_over_the_limits_are_refused_both_ways() -> None:
    with pytest.raises(RequestTooLarge):
        GetChunks(blob_id=ID, start=0, count=MAX_RANGE_CHUNKS + 1)
    with pytest.raises(RequestTooLarge):
        Have(blob_ids=(ID,) * (MAX_HAVE_IDS + 1))
    with pytest.raises(RequestTooLarge):
        decode_request(encode([3, ID, 0, MAX_RANGE_CHUNKS + 1]))
    with pytest.raises(RequestTooLarge):
        decode_request(encode([1, [ID] * (MAX_HAVE_IDS + 1)]))
    assert error_code(RequestTooLarge("x")) == ERR_TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc0",  # nil: not canonical
        encode([]),
        encode([9, ID]),
        encode([1, []]),  # HAVE needs at least one id
        encode([1, [ID[:31]]]),
        encode([2, ID, 1]),
        encode([3, ID, 0]),
        encode([3, ID, 0, 0]),
        encode([3, ID, 1 << 20, 1]),
        encode([2, 5]),
        encode([3, ID, 0, 1]) + b"\x00",  # trailing bytes
    ],
)
def test_malformed_requests_are_bad_messages(raw: bytes) -> None:
    with pytest.raises(BadMessage) as exc:
        decode_request(raw)
    assert error_code(exc.value) in (ERR_BAD_REQUEST, ERR_TOO_LARGE)


def test_have_reply_round_trip_and_checks() -> None:
    entries = [
        HaveEntry(has_manifest=True, present=3, total=3),
        HaveEntry(has_manifest=True, present=1, total=3),
        HaveEntry(has_manifest=False, present=0, total=0),
    ]
    got = decode_have_reply(encode_have_reply(entries), 3)
    assert got == entries and [e.complete for e in got] == [True, False, False]
    for bad in (
        encode_have_reply(entries[:2]),  # wrong count
        encode([[1, 4, 3]]),  # more present than total
        encode([[0, 0, 5]]),  # a total without a manifest
        encode([[2, 0, 0]]),
        b"\x93",
    ):
        with pytest.raises(BadMessage):
            decode_have_reply(bad, 1 if bad != encode_have_reply(entries[:2]) else 3)


def test_error_codes_map_to_typed_errors_and_back() -> None:
    pairs: list[tuple[StorageError, int, type[StorageError]]] = [
        (BlobNotFound("x"), ERR_NOT_FOUND, BlobNotFound),
        (ChunkMissing("x"), ERR_CHUNK_MISSING, ChunkMissing),
        (BadMessage("x"), ERR_BAD_REQUEST, RequestRejected),
        (StorageError("x"), ERR_UNAVAILABLE, ProviderFailed),
    ]
    for local, code, remote_type in pairs:
        assert error_code(local) == code
        assert isinstance(remote_error(code, "m"), remote_type)
    assert isinstance(remote_error(60000, "m"), ProviderFailed)
