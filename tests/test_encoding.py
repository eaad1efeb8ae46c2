"""Canonical encoding: one encoding per value, typed errors for everything else."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.encoding import (
    DecodeError,
    EncodeError,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_text,
)

values = st.recursive(
    st.one_of(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.binary(max_size=64)),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


@given(values)
@settings(max_examples=200)
def test_round_trip_is_identity(value):
    assert decode(encode(value)) == value
    assert encode(decode(encode(value))) == encode(value)


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_arbitrary_bytes_decode_or_raise_decode_error(data):
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data  # anything accepted is canonical


def test_tuples_encode_like_lists():
    assert encode((1, b"x", (2,))) == encode([1, b"x", [2]])


@pytest.mark.parametrize("bad", [1.5, "text", None, True, {"a": 1}, 2**64, -(2**63) - 1, object()])
def test_encode_rejects_non_canonical_types(bad):
    with pytest.raises(EncodeError):
        encode([bad])


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb({b"a": 1}),          # map
        msgpack.packb("text"),             # str
        msgpack.packb(1.5),                # float
        msgpack.packb(None),               # nil
        msgpack.packb(True),               # bool
        msgpack.packb(msgpack.ExtType(1, b"x")),
        b"\xcd\x00\x01",                   # uint16 holding 1: not minimal
        encode([1, 2]) + b"\x00",          # trailing bytes
        encode([b"abc"])[:-1],             # truncated
        b"",
        b"\xc1",                           # never-used byte
        b"\xdd\xff\xff\xff\xff",           # array claiming 4G items
    ],
)
def test_decode_rejects_malformed(data):
    with pytest.raises(DecodeError):
        decode(data)


def test_decode_enforces_size_limit_before_parsing():
    data = encode([b"x" * 100])
    with pytest.raises(DecodeError, match="exceeds limit"):
        decode(data, max_size=50)
    assert decode(data, max_size=len(data)) == [b"x" * 100]


def test_decode_rejects_deep_nesting():
    value: list = []
    for _ in range(40):
        value = [value]
    data = msgpack.packb(value)
    with pytest.raises(DecodeError):
        decode(data)


def test_decode_rejects_non_bytes_input():
    with pytest.raises(DecodeError):
        decode("not bytes")  # type: ignore[arg-type]


def test_schema_helpers():
    assert expect_list([1, 2], 2) == [1, 2]
    with pytest.raises(DecodeError, match="expected 3 fields"):
        expect_list([1, 2], 3)
    with pytest.raises(DecodeError):
        expect_list(b"x")
    with pytest.raises(DecodeError):
        expect_list([1, 2, 3], max_length=2)
    assert expect_int(5, hi=10) == 5
    with pytest.raises(DecodeError):
        expect_int(11, hi=10)
    with pytest.raises(DecodeError):
        expect_int(-1)
    with pytest.raises(DecodeError):
        expect_int(b"1")
    assert expect_bytes(b"ab", size=2) == b"ab"
    with pytest.raises(DecodeError):
        expect_bytes(b"abc", size=2)
    with pytest.raises(DecodeError):
        expect_bytes(b"abc", max_size=2)
    with pytest.raises(DecodeError):
        expect_bytes(3)
    assert expect_text("héllo".encode(), max_size=10) == "héllo"
    with pytest.raises(DecodeError, match="UTF-8"):
        expect_text(b"\xff\xfe", max_size=10)
