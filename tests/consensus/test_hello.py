"""consensus.hello: a validator's signed "this peer speaks for me", and the book of them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.crypto import PrivateKey, Signer
from consensus.encoding import DecodeError, encode
from consensus.errors import ConsensusMisuseError, InvalidMessageError
from consensus.hello import ValidatorBook, ValidatorHello

CHAIN = "hello-test"
V1, V2, STRANGER = (Signer(PrivateKey(bytes([i]) * 32)) for i in (1, 2, 3))
VALIDATORS = [V1.address, V2.address]


def test_round_trip_and_verify() -> None:
    hello = ValidatorHello.create(V1, CHAIN, "12D3KooWpeer1")
    back = ValidatorHello.decode(hello.encode())
    assert back == hello and back.address == V1.address
    back.verify(CHAIN, "12D3KooWpeer1")


@pytest.mark.parametrize("chain, sender", [("other-chain", "12D3KooWpeer1"),
                                           (CHAIN, "12D3KooWpeer2")])
def test_another_chain_or_another_sender_is_refused(chain: str, sender: str) -> None:
    hello = ValidatorHello.create(V1, CHAIN, "12D3KooWpeer1")
    with pytest.raises(InvalidMessageError):
        hello.verify(chain, sender)


def test_a_claim_signed_by_another_key_is_refused() -> None:
    real = ValidatorHello.create(STRANGER, CHAIN, "12D3KooWevil")
    forged = ValidatorHello(pub_key=V1.public_key, peer_id="12D3KooWevil",
                            signature=real.signature)
    with pytest.raises(InvalidMessageError):
        forged.verify(CHAIN, "12D3KooWevil")


def test_misuse_and_bad_bytes() -> None:
    with pytest.raises(ConsensusMisuseError):
        ValidatorHello(pub_key=b"x", peer_id="p", signature=b"\0" * 64)
    with pytest.raises(ConsensusMisuseError):
        ValidatorHello(pub_key=V1.public_key, peer_id="", signature=b"\0" * 64)
    for bad in (b"", b"\xc1", encode([1, 2, 3]), encode([V1.public_key, b"\xff\xfe", b"s" * 64]),
                encode([V1.public_key, b"p", b"short"]), b"\x00" * 600):
        with pytest.raises(DecodeError):
            ValidatorHello.decode(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decode_raises_only_decode_errors(data: bytes) -> None:
    try:
        ValidatorHello.decode(data)
    except DecodeError:
        pass


def test_book_keeps_validators_only_and_follows_the_latest_hello() -> None:
    book = ValidatorBook(CHAIN)
    assert book.learn(ValidatorHello.create(V1, CHAIN, "p1"), "p1", VALIDATORS)
    assert book.learn(ValidatorHello.create(V2, CHAIN, "p2"), "p2", VALIDATORS)
    assert not book.learn(ValidatorHello.create(STRANGER, CHAIN, "p3"), "p3", VALIDATORS)
    assert len(book) == 2 and book.address_of("p3") is None
    assert book.peers_for(VALIDATORS, exclude=V1.address) == ["p2"]
    # a second node key for V2 (rotated): both peers get V2's messages
    assert book.learn(ValidatorHello.create(V2, CHAIN, "p2b"), "p2b", VALIDATORS)
    assert book.peers_for(VALIDATORS, exclude=V1.address) == ["p2", "p2b"]
    # a peer that now speaks for a non-validator is dropped
    assert not book.learn(ValidatorHello.create(STRANGER, CHAIN, "p2b"), "p2b", VALIDATORS)
    assert book.peers_for(VALIDATORS, exclude=V1.address) == ["p2"]
    # a replay by another peer changes nothing
    with pytest.raises(InvalidMessageError):
        book.learn(ValidatorHello.create(V1, CHAIN, "p1"), "p9", VALIDATORS)
    assert book.address_of("p9") is None
