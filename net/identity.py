"""libp2p peer identities derived from a 32-byte Ed25519 seed.

The peer ID is computed here without importing libp2p (which costs over a
second per process), so ``init`` and ``testnet init`` stay fast. It follows
the libp2p peer-ID spec: the protobuf-encoded public key (``Type=Ed25519``,
``Data=key``) is short enough to be inlined with the identity multihash, and
the result is shown in base58btc. A test checks it against libp2p itself.
"""

from __future__ import annotations

import nacl.signing

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


def peer_id_bytes_from_pubkey(pubkey: bytes) -> bytes:
    """Multihash bytes of the peer ID for an Ed25519 public key."""
    if len(pubkey) != 32:
        raise ValueError("Ed25519 public key must be 32 bytes")
    proto = b"\x08\x01\x12\x20" + pubkey  # KeyType=Ed25519(1), Data=32 bytes
    return b"\x00" + bytes([len(proto)]) + proto  # identity multihash


def peer_id_from_seed(seed: bytes) -> str:
    """Base58 peer ID (``12D3KooW...``) of the Ed25519 node key with this seed."""
    if len(seed) != 32:
        raise ValueError("node key seed must be 32 bytes")
    pubkey = bytes(nacl.signing.SigningKey(seed).verify_key)
    return _b58encode(peer_id_bytes_from_pubkey(pubkey))
