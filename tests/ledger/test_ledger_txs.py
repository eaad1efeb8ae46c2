"""Transaction encoding: round trips for every kind; malformed bytes get the typed error."""

from __future__ import annotations

import msgpack
import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, ONE_OF_EACH

from consensus.encoding import DecodeError, encode
from node.ledger import (
    MAX_TX_BYTES,
    Code,
    CommitOmlizationBody,
    Kind,
    LedgerUsageError,
    OpenClaimBody,
    RegisterModelBody,
    TransferBody,
    TxDecodeError,
    UpdateModelBody,
    build_tx,
    decode_tx,
)
from node.ledger.txs import BODY_TYPES, encode_unsigned

A = ADDR["alice"]
H = bytes(range(32))
SIG = bytes(64)



def test_every_kind_has_a_body_and_a_sample():
    assert set(BODY_TYPES) == set(Kind)
    assert {type(b).KIND for b in ONE_OF_EACH} == set(Kind)


@pytest.mark.parametrize("body", ONE_OF_EACH, ids=lambda b: type(b).__name__)
def test_round_trip(body):
    raw = build_tx(KEYS["alice"], CHAIN, 7, body)
    tx = decode_tx(raw)
    assert tx.body == body
    assert tx.nonce == 7 and tx.chain_id == CHAIN and tx.sender == A
    assert tx.kind is type(body).KIND
    assert tx.verify_signature()
    assert tx.to_json()["kind"] == type(body).KIND.name.lower()
    assert build_tx(KEYS["alice"], CHAIN, 7, body) == raw  # deterministic


def test_lists_are_normalised_to_tuples():
    body = RegisterModelBody(model_id=b"m", weights_hash=H, omlizers=[A], splits=[[A, 5]])
    assert body.omlizers == (A,) and body.splits == ((A, 5),)


@pytest.mark.parametrize("kwargs", [
    {"to": A[:19], "amount": 1},       # short address
    {"to": A, "amount": -1},           # negative
    {"to": A, "amount": 2**64},        # u64 overflow
    {"to": A, "amount": True},         # bool is not an int here
    {"to": "ab" * 10, "amount": 1},    # str instead of bytes
])
def test_invalid_bodies_cannot_be_built(kwargs):
    with pytest.raises(LedgerUsageError):
        TransferBody(**kwargs)


def _outer(unsigned_value, sig=SIG) -> bytes:
    return encode([encode(unsigned_value), sig])


GOOD_UNSIGNED = [CHAIN.encode(), KEYS["alice"].public_key, 0, int(Kind.TRANSFER), [A, 5]]


def _with(i, value):
    u = list(GOOD_UNSIGNED)
    u[i] = value
    return _outer(u)


MALFORMED = {
    "empty": b"",
    "not msgpack": b"\xc1",
    "truncated": build_tx(KEYS["alice"], CHAIN, 0, TransferBody(to=A, amount=5))[:-3],
    "trailing bytes": build_tx(KEYS["alice"], CHAIN, 0, TransferBody(to=A, amount=5)) + b"\x00",
    "outer not a list": encode(5),
    "outer extra field": encode([encode(GOOD_UNSIGNED), SIG, b""]),
    "short signature": _outer(GOOD_UNSIGNED, SIG[:63]),
    "unsigned not bytes": encode([GOOD_UNSIGNED, SIG]),
    "inner not canonical": encode([msgpack.packb(GOOD_UNSIGNED[:2] + [msgpack.ExtType(1, b"")]
                                                 + GOOD_UNSIGNED[3:], use_bin_type=True), SIG]),
    "map instead of array": encode([msgpack.packb({b"a": 1}, use_bin_type=True), SIG]),
    "str chain id": encode([msgpack.packb(["test-chain"] + GOOD_UNSIGNED[1:], use_bin_type=True),
                            SIG]),
    "inner extra field": _outer(GOOD_UNSIGNED + [b""]),
    "inner missing field": _outer(GOOD_UNSIGNED[:4]),
    "short pubkey": _with(1, b"\x01" * 31),
    "nonce negative": _with(2, -1),
    "nonce bytes": _with(2, b"\x00"),
    "unknown kind": _with(3, 99),
    "body extra field": _with(4, [A, 5, 0]),
    "body missing field": _with(4, [A]),
    "body wrong type": _with(4, [A, b"5"]),
    "body short address": _with(4, [A[:5], 5]),
    "body nested wrong": _with(4, [[A], 5]),
    "empty chain id": _with(0, b""),
    "chain id not utf8": _with(0, b"\xff\xfe"),
    "unsigned part truncated": encode([encode(GOOD_UNSIGNED)[:-4], SIG]),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_bytes_raise_the_typed_error(raw):
    with pytest.raises(TxDecodeError) as info:
        decode_tx(raw)
    assert isinstance(info.value, DecodeError)  # one except clause catches all untrusted input
    assert info.value.code == Code.MALFORMED


def test_non_minimal_integer_encoding_is_rejected():
    good = encode_unsigned(CHAIN, KEYS["alice"].public_key, 0, TransferBody(to=A, amount=5))
    # amount 5 as a uint64 (0xcf + 8 bytes) instead of a positive fixint
    bad = good[:-1] + b"\xcf" + (5).to_bytes(8, "big")
    assert msgpack.unpackb(bad, raw=True)[4][1] == 5
    with pytest.raises(TxDecodeError):
        decode_tx(encode([bad, SIG]))


def test_oversized_transaction_is_rejected_before_parsing():
    raw = b"\x92" + b"\xc6" + (MAX_TX_BYTES).to_bytes(4, "big") + b"x" * MAX_TX_BYTES
    with pytest.raises(TxDecodeError) as info:
        decode_tx(raw)
    assert info.value.code == Code.TOO_LARGE


def test_body_too_big_for_the_limit_cannot_be_decoded():
    body = OpenClaimBody(claim_id=0, items=((0, "k", "o" * 16_384),), salt=bytes(32))
    assert len(build_tx(KEYS["alice"], CHAIN, 0, body)) < MAX_TX_BYTES
    with pytest.raises(LedgerUsageError):
        OpenClaimBody(claim_id=0, items=((0, "k", "o" * 16_385),), salt=bytes(32))
    with pytest.raises(LedgerUsageError):  # more items than a claim may name
        OpenClaimBody(claim_id=0, items=tuple((i, "k", "o") for i in range(65)),
                      salt=bytes(32))
    with pytest.raises(LedgerUsageError):  # the salt is exactly 32 bytes
        OpenClaimBody(claim_id=0, items=((0, "k", "o"),), salt=bytes(31))
    # four items with the largest outputs do not fit one transaction: the size limit
    # bounds a claim before the item count does
    big = OpenClaimBody(claim_id=0, items=tuple((i, "k", "o" * 16_384) for i in range(4)),
                        salt=bytes(32))
    with pytest.raises(TxDecodeError):
        decode_tx(build_tx(KEYS["alice"], CHAIN, 0, big))


def test_not_bytes_is_rejected():
    with pytest.raises(TxDecodeError):
        decode_tx("not bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- blob ids

COMMIT = CommitOmlizationBody(model_id=b"m", host=A, package_hash=H, fp_root=H, fp_count=4,
                              package_blob=H)
BLOB_BODIES = {  # "kind.field": (sample body with the field set, may the field be empty)
    "register_model.blob_id": (RegisterModelBody(model_id=b"m", weights_hash=H, blob_id=H), True),
    "update_model.blob_id": (UpdateModelBody(model_id=b"m", blob_id=H), True),
    "commit_omlization.package_blob": (COMMIT, False),
}


def _unsigned_with_last(body, last) -> list:
    value = body.to_value()
    value[-1] = last
    return [CHAIN.encode(), KEYS["alice"].public_key, 0, int(body.KIND), value]


@pytest.mark.parametrize("name", BLOB_BODIES)
def test_blob_field_is_last_on_the_wire(name):
    """New fields go at the end of a body, so an older layout is a prefix."""
    body, _ = BLOB_BODIES[name]
    assert body.to_value()[-1] == H
    assert decode_tx(build_tx(KEYS["alice"], CHAIN, 0, body)).body == body


@pytest.mark.parametrize("size", [1, 31, 33, 64])
@pytest.mark.parametrize("name", BLOB_BODIES)
def test_blob_field_of_wrong_length_is_rejected(name, size):
    body, _ = BLOB_BODIES[name]
    with pytest.raises(TxDecodeError, match="expected (empty or )?32 bytes") as info:
        decode_tx(_outer(_unsigned_with_last(body, b"\x01" * size)))
    assert info.value.code == Code.MALFORMED
    with pytest.raises(LedgerUsageError):
        type(body)(**{**{f: getattr(body, f) for f in type(body).SPECS},
                      name.split(".")[1]: b"\x01" * size})


@pytest.mark.parametrize("name", BLOB_BODIES)
def test_empty_blob_field_only_where_optional(name):
    body, optional = BLOB_BODIES[name]
    raw = _outer(_unsigned_with_last(body, b""))
    if optional:
        assert decode_tx(raw).body.to_value()[-1] == b""
    else:
        with pytest.raises(TxDecodeError, match="expected 32 bytes"):
            decode_tx(raw)


@pytest.mark.parametrize("name", BLOB_BODIES)
def test_blob_field_missing_or_not_bytes_is_rejected(name):
    """A body in the layout from before the blob field existed no longer decodes."""
    body, _ = BLOB_BODIES[name]
    unsigned = _unsigned_with_last(body, H)
    with pytest.raises(TxDecodeError, match="expected"):
        decode_tx(_outer(unsigned[:4] + [unsigned[4][:-1]]))
    with pytest.raises(TxDecodeError, match="expected bytes"):
        decode_tx(_outer(_unsigned_with_last(body, 7)))


def test_blob_ids_default_empty_and_show_as_hex():
    assert RegisterModelBody(model_id=b"m", weights_hash=H).blob_id == b""
    assert UpdateModelBody(model_id=b"m").blob_id == b""
    assert decode_tx(build_tx(KEYS["alice"], CHAIN, 0, COMMIT)).to_json()["body"][
        "package_blob"] == H.hex()
