"""RFC 6962 Merkle root over transaction hashes (the header's ``txs_root``).

The same tree shape as ``oml.commitments`` (leaf ``H(0x00||x)``, inner
``H(0x01||l||r)``, split at the largest power of two below ``n``), kept here
because ``consensus`` may import no other project package. The empty tree's
root is ``SHA-256(b"")``, as in RFC 6962.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(nodes: Sequence[bytes]) -> bytes:
    if len(nodes) == 1:
        return nodes[0]
    k = _split(len(nodes))
    return hashlib.sha256(b"\x01" + _root(nodes[:k]) + _root(nodes[k:])).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over ``leaves`` (already-hashed or raw items; each is leaf-hashed here)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return _root([hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves])


def txs_root(txs: Sequence[bytes]) -> bytes:
    """Merkle root over the SHA-256 of each transaction, in block order."""
    return merkle_root([hashlib.sha256(tx).digest() for tx in txs])
