"""Fingerprint leaf hashing and the RFC 6962 Merkle tree."""

from __future__ import annotations

import hashlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oml.commitments import (
    CommitmentError,
    leaf_hash,
    leaf_hash_text,
    merkle_path,
    merkle_root,
    normalize_text,
    root_from_path,
    verify_path,
)


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written recursively, as an independent check."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    left, right = _reference_root(leaves[:k]), _reference_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100])
def test_root_matches_rfc6962_and_every_path_verifies(n):
    leaves = _leaves(n)
    root = merkle_root(leaves)
    assert root == _reference_root(leaves)
    for i in range(n):
        path = merkle_path(leaves, i)
        assert root_from_path(leaves[i], i, n, path) == root
        assert verify_path(leaves[i], i, n, path, root)


@given(st.integers(min_value=2, max_value=40), st.data())
@settings(max_examples=60)
def test_wrong_leaf_index_or_path_fails(n, data):
    leaves = _leaves(n)
    root = merkle_root(leaves)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda x: x != i))
    path = merkle_path(leaves, i)
    assert not verify_path(leaves[j], i, n, path, root)  # another leaf at i
    assert not verify_path(leaves[i], j, n, path, root) or merkle_path(leaves, j) == path
    bad = list(path)
    bad[0] = bytes(32)
    assert not verify_path(leaves[i], i, n, bad, root)
    assert not verify_path(leaves[i], i, n, path[:-1], root)  # wrong length


def test_leaf_node_cannot_pose_as_inner_node():
    leaves = _leaves(4)
    root = merkle_root(leaves)
    inner = hashlib.sha256(b"\x01" + hashlib.sha256(b"\x00" + leaves[0]).digest()
                           + hashlib.sha256(b"\x00" + leaves[1]).digest()).digest()
    # presenting the inner node as a leaf of a 2-leaf tree gives another root
    assert not verify_path(inner, 0, 2, [merkle_root(leaves[2:])], root)


def test_leaf_hash_binds_every_field():
    base = dict(model_id=b"m", host=b"h" * 20, index=3, salt=b"s" * 32, key=b"k", response=b"r")
    h = leaf_hash(**base)
    for field, other in [("model_id", b"m2"), ("host", b"g" * 20), ("index", 4),
                         ("salt", b"t" * 32), ("key", b"k2"), ("response", b"r2")]:
        assert leaf_hash(**{**base, field: other}) != h
    # length prefixes: shifting a byte between key and response changes the hash
    assert leaf_hash(**{**base, "key": b"kr", "response": b""}) != leaf_hash(
        **{**base, "key": b"k", "response": b"r"})


def test_text_normalisation():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert normalize_text(composed) == normalize_text(decomposed)
    assert normalize_text("a\r\nb\rc") == b"a\nb\nc"
    assert normalize_text(" lead") == b" lead"  # nothing stripped
    assert leaf_hash_text(b"m", b"h", 0, b"s", composed, "x") == leaf_hash_text(
        b"m", b"h", 0, b"s", decomposed, "x")


def test_errors():
    with pytest.raises(CommitmentError):
        merkle_root([])
    with pytest.raises(CommitmentError):
        merkle_path(_leaves(3), 3)
    with pytest.raises(CommitmentError):
        root_from_path(b"x" * 32, 5, 3, [])
    with pytest.raises(CommitmentError):
        leaf_hash(b"", b"", -1, b"", b"", b"")


def test_commitments_import_no_torch():
    import subprocess

    code = "import oml.commitments, oml, sys; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
