"""Keys, addresses and domain-separated signatures."""

from __future__ import annotations

import hashlib

import pytest

from consensus.crypto import (
    CryptoError,
    PrivateKey,
    Signer,
    address_of,
    sign_bytes,
    verify,
)


def test_address_is_sha256_prefix():
    key = PrivateKey(bytes(range(32)))
    assert key.address == hashlib.sha256(key.public_key).digest()[:20]
    assert address_of(key.public_key) == key.address
    with pytest.raises(CryptoError):
        address_of(b"short")


def test_sign_and_verify():
    key = PrivateKey.generate()
    sig = key.sign(b"oml/test/v1", "chain-a", b"body")
    assert verify(key.public_key, b"oml/test/v1", "chain-a", b"body", sig)
    assert Signer(key).sign(b"oml/test/v1", "chain-a", b"body") == sig  # deterministic Ed25519


@pytest.mark.parametrize(
    "domain,chain,body",
    [(b"oml/other/v1", "chain-a", b"body"), (b"oml/test/v1", "chain-b", b"body"),
     (b"oml/test/v1", "chain-a", b"bodx")],
)
def test_signature_bound_to_domain_chain_and_body(domain, chain, body):
    key = PrivateKey.generate()
    sig = key.sign(b"oml/test/v1", "chain-a", b"body")
    assert not verify(key.public_key, domain, chain, body, sig)


def test_verify_never_raises_on_garbage():
    key = PrivateKey.generate()
    assert not verify(b"x" * 31, b"d", "c", b"b", b"s" * 64)
    assert not verify(key.public_key, b"d", "c", b"b", b"s" * 63)
    assert not verify(b"\xff" * 32, b"d", "c", b"b", b"s" * 64)  # not a curve point


def test_sign_bytes_unambiguous():
    # moving bytes between chain id and body must change the sign bytes
    assert sign_bytes(b"d", "ab", b"c") != sign_bytes(b"d", "a", b"bc")
    with pytest.raises(CryptoError):
        sign_bytes(b"bad\x00domain", "c", b"")
    with pytest.raises(CryptoError):
        sign_bytes(b"", "c", b"")


def test_private_key_validation_and_repr():
    with pytest.raises(CryptoError):
        PrivateKey(b"short")
    key = PrivateKey.generate()
    assert key.seed.hex() not in repr(key)
