"""``/oml/permission/1`` codecs and limits: every malformed request is a typed error."""

from __future__ import annotations

import pytest

from consensus.encoding import encode
from node.roles.owner.protocol import (
    MAX_BATCH,
    MAX_REQUEST_BYTES,
    PermissionGrant,
    PermissionProtocolError,
    PermissionRequest,
    Refusal,
    decode_grant,
    decode_request,
    encode_grant,
    encode_request,
    parse_stale_message,
    stale_message,
)

U64 = 2**64 - 1


def req(n: int = 2, first: int = 5, **kw: object) -> PermissionRequest:
    fields: dict[str, object] = dict(
        model_id=b"m" * 64, host=b"h" * 20, first_seq=first,
        query_hashes=tuple(bytes([i % 256]) * 32 for i in range(n)),
        cumulative_count=first + n, cumulative_amount=U64, voucher_signature=b"s" * 64)
    fields.update(kw)
    return PermissionRequest(**fields)  # type: ignore[arg-type]


def test_round_trip_and_largest_request_fits_the_limit() -> None:
    for r in (req(), req(MAX_BATCH, first=U64 - MAX_BATCH)):
        data = encode_request(r)
        assert decode_request(data) == r
        assert len(data) <= MAX_REQUEST_BYTES
    g = PermissionGrant(issued_height=U64, signatures=(b"x" * 64,) * MAX_BATCH)
    assert decode_grant(encode_grant(g), MAX_BATCH) == g


def good_fields() -> list[object]:
    return [1, b"m", b"h" * 20, 5, [b"q" * 32], 6, 7, b"s" * 64]


@pytest.mark.parametrize("index,value", [
    (0, 2),                      # unknown version
    (1, b""),                    # empty model id
    (1, b"m" * 65),              # model id too long
    (2, b"h" * 19),              # host not an address
    (3, -1),                     # negative seq
    (4, []),                     # empty batch
    (4, [b"q" * 31]),            # hash of the wrong size
    (4, [b"q" * 32] * (MAX_BATCH + 1)),
    (5, 7),                      # count != first_seq + n
    (6, b"seven"),               # amount not an int
    (7, b"s" * 63),              # short signature
])
def test_malformed_requests_are_protocol_errors(index: int, value: object) -> None:
    fields = good_fields()
    fields[index] = value
    with pytest.raises(PermissionProtocolError):
        decode_request(encode(fields))


@pytest.mark.parametrize("data", [b"", b"\xc1", encode([1, 2]), encode(good_fields()) + b"\x00",
                                  b"\x00" * (MAX_REQUEST_BYTES + 1)])
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(PermissionProtocolError):
        decode_request(data)


def test_grant_with_the_wrong_number_of_signatures_is_refused() -> None:
    data = encode_grant(PermissionGrant(issued_height=3, signatures=(b"x" * 64,) * 2))
    with pytest.raises(PermissionProtocolError):
        decode_grant(data, 3)


def test_stale_message_carries_the_latest_count() -> None:
    assert parse_stale_message(stale_message(42, "batch starts at 40")) == 42
    assert parse_stale_message(stale_message(0)) == 0
    assert parse_stale_message("something else") is None


def test_refusal_codes_are_the_contract() -> None:
    assert {c.name: int(c) for c in Refusal} == {
        "BAD_REQUEST": 100, "NOT_OWNER": 101, "HOST_NOT_ACTIVE": 102, "BAD_VOUCHER": 103,
        "VOUCHER_STALE": 104, "ESCROW_EXHAUSTED": 105, "CLAIM_PENDING": 106,
        "RATE_LIMITED": 107}
