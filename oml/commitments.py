"""Fingerprint commitments: salted leaves and a Merkle tree over them.

This module imports no torch (the ledger verifies reveals with it) and no
other project package, so both ``oml`` and ``node`` can rely on it.

Leaf ``i`` for one host's fingerprint set::

    leaf_i = SHA-256( "oml/fp-leaf/v1" || 0x00 ||
                      field(model_id) || field(host) || u64(i) ||
                      field(salt_i) || field(key_i) || field(response_i) )

where ``field(b) = u32_be(len(b)) || b`` and key/response are the UTF-8 bytes
of :func:`normalize_text` applied to the text. Length prefixes make the
concatenation unambiguous; the domain tag keeps leaves apart from every other
hash in the system.

The tree follows RFC 6962 (Certificate Transparency): a leaf node is
``H(0x00 || leaf)``, an inner node ``H(0x01 || left || right)``, and a tree of
``n`` leaves splits at the largest power of two below ``n``. The distinct
prefixes stop a leaf from posing as an inner node (second-preimage attacks).

A deployment answers a fingerprint key with a completion that *starts with*
the response. The ledger opens the leaf with the key and response the OMLizer
reveals, then checks that the prover's normalised observed output starts with
that response (see docs/ledger.md).
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
from collections.abc import Sequence

LEAF_DOMAIN = b"oml/fp-leaf/v1\x00"
SALT_SIZE = 32
HASH_SIZE = 32
MAX_FIELD = 2**32 - 1


class CommitmentError(ValueError):
    """A commitment input is malformed (empty tree, bad index, bad proof shape)."""


def normalize_text(text: str) -> bytes:
    """The one normalisation applied to keys and responses before hashing.

    Unicode NFC (so visually equal text composed differently hashes equally)
    and CRLF/CR folded to LF; nothing is stripped, because a response is
    matched as an exact prefix of the model's completion.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text).encode("utf-8")


def _field(data: bytes) -> bytes:
    if len(data) > MAX_FIELD:
        raise CommitmentError("field too long")
    return struct.pack(">I", len(data)) + data


def leaf_hash(model_id: bytes, host: bytes, index: int, salt: bytes,
              key: bytes, response: bytes) -> bytes:
    """Leaf hash of fingerprint ``index``; key and response are normalised UTF-8 bytes."""
    if not 0 <= index < 2**64:
        raise CommitmentError(f"index out of range: {index}")
    h = hashlib.sha256(LEAF_DOMAIN)
    h.update(_field(model_id))
    h.update(_field(host))
    h.update(struct.pack(">Q", index))
    h.update(_field(salt))
    h.update(_field(key))
    h.update(_field(response))
    return h.digest()


def leaf_hash_text(model_id: bytes, host: bytes, index: int, salt: bytes,
                   key: str, response: str) -> bytes:
    """:func:`leaf_hash` for text key and response (normalised here)."""
    return leaf_hash(model_id, host, index, salt, normalize_text(key), normalize_text(response))


def _node(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def _inner(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root_of_nodes(nodes: Sequence[bytes]) -> bytes:
    level = list(nodes)
    # Iterative RFC 6962 root: pairing left to right and carrying an odd
    # last node up unchanged gives the same tree as the recursive split.
    while len(level) > 1:
        nxt = [_inner(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root over ``leaves`` (leaf hashes, in index order)."""
    if not leaves:
        raise CommitmentError("a commitment needs at least one leaf")
    return _root_of_nodes([_node(leaf) for leaf in leaves])


def merkle_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index``: sibling hashes from the leaf up to the root."""
    n = len(leaves)
    if not 0 <= index < n:
        raise CommitmentError(f"index {index} outside tree of {n} leaves")
    path: list[bytes] = []
    nodes = [_node(leaf) for leaf in leaves]

    def walk(lo: int, hi: int) -> bytes:
        # Returns the subtree root of nodes[lo:hi] and records the siblings
        # on the way down to ``index`` (appended bottom-up after recursion).
        if hi - lo == 1:
            return nodes[lo]
        k = _split(hi - lo)
        if index < lo + k:
            left = walk(lo, lo + k)
            right = _root_of_nodes(nodes[lo + k:hi])
            path.append(right)
        else:
            left = _root_of_nodes(nodes[lo:lo + k])
            right = walk(lo + k, hi)
            path.append(left)
        return _inner(left, right)

    walk(0, n)
    return path


def root_from_path(leaf: bytes, index: int, count: int, path: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf, its index, the tree size and its audit path."""
    if not 0 <= index < count:
        raise CommitmentError(f"index {index} outside tree of {count} leaves")
    # Descend to find the sequence of (sibling side) decisions, then fold up.
    sides: list[bool] = []  # True: sibling is on the right
    lo, hi = 0, count
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            sides.append(True)
            hi = lo + k
        else:
            sides.append(False)
            lo = lo + k
    if len(path) != len(sides):
        raise CommitmentError(f"path has {len(path)} hashes, tree needs {len(sides)}")
    node = _node(leaf)
    for sibling, right in zip(path, reversed(sides)):
        if len(sibling) != HASH_SIZE:
            raise CommitmentError("path hash of wrong size")
        node = _inner(node, sibling) if right else _inner(sibling, node)
    return node


def verify_path(leaf: bytes, index: int, count: int, path: Sequence[bytes], root: bytes) -> bool:
    """True if ``leaf`` sits at ``index`` in the tree of ``count`` leaves with ``root``."""
    try:
        return root_from_path(leaf, index, count, path) == root
    except CommitmentError:
        return False
