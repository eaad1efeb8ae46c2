"""Ed25519 keys, addresses and domain-separated signatures.

Sign bytes are ``domain || 0x00 || encode(chain_id) || body``. The domain tag
names the purpose (a transaction, a vote, a permission string, ...) and never
contains a NUL byte; the chain id is length-prefixed by the canonical
encoding. So a signature made for one purpose or one chain can never be
replayed as another, and no two (domain, chain, body) triples share sign
bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from .encoding import encode

PUBKEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32
ADDRESS_SIZE = 20


class CryptoError(Exception):
    """A key or signature is malformed (wrong size, not a curve point)."""


def address_of(pubkey: bytes) -> bytes:
    """Account address: the first 20 bytes of SHA-256(public key)."""
    if len(pubkey) != PUBKEY_SIZE:
        raise CryptoError(f"public key must be {PUBKEY_SIZE} bytes, got {len(pubkey)}")
    return hashlib.sha256(pubkey).digest()[:ADDRESS_SIZE]


def sign_bytes(domain: bytes, chain_id: str, body: bytes) -> bytes:
    """The exact bytes that are signed for ``body`` under ``domain`` on ``chain_id``."""
    if not domain or b"\x00" in domain:
        raise CryptoError("domain tag must be non-empty and contain no NUL byte")
    return domain + b"\x00" + encode(chain_id.encode("utf-8")) + body


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An Ed25519 signing key held as its 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_SIZE:
            raise CryptoError(f"seed must be {SEED_SIZE} bytes")

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def _signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def sign(self, domain: bytes, chain_id: str, body: bytes) -> bytes:
        """Sign ``body`` for ``domain`` on ``chain_id``; returns the 64-byte signature."""
        return self._signing_key.sign(sign_bytes(domain, chain_id, body)).signature

    def __repr__(self) -> str:  # never print the seed
        return f"PrivateKey(address={self.address.hex()})"


class Signer:
    """A :class:`PrivateKey` with its nacl key built once, for hot signing loops."""

    __slots__ = ("_key", "public_key", "address")

    def __init__(self, key: PrivateKey) -> None:
        self._key = nacl.signing.SigningKey(key.seed)
        self.public_key = bytes(self._key.verify_key)
        self.address = address_of(self.public_key)

    def sign(self, domain: bytes, chain_id: str, body: bytes) -> bytes:
        return self._key.sign(sign_bytes(domain, chain_id, body)).signature


def verify(pubkey: bytes, domain: bytes, chain_id: str, body: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``pubkey``'s signature of ``body`` under domain and chain.

    Never raises for malformed keys or signatures: those are simply invalid.
    """
    if len(pubkey) != PUBKEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(pubkey).verify(sign_bytes(domain, chain_id, body), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError, nacl.exceptions.CryptoError):
        return False
    return True


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
