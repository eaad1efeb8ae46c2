"""Shared fixtures for the blob store tests: a small chunk size keeps them fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from node.roles.storage.store import BlobStore

#: The smallest legal chunk size, so multi-chunk cases stay small.
CS = 64 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BlobStore]:
    s = BlobStore.open(tmp_path / "store", quota_bytes=64 << 20, durable=False)
    yield s
    s.close()


def write_random(path: Path, size: int, seed: int = 0) -> bytes:
    """A file of ``size`` pseudo-random bytes (seeded, so reruns are identical)."""
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def keypair(seed_byte: int) -> tuple[bytes, bytes]:
    """(Ed25519 seed, public key) from a fixed seed."""
    seed = bytes([seed_byte]) * 32
    return seed, bytes(nacl.signing.SigningKey(seed).verify_key)


def files_under(path: Path) -> list[str]:
    """Every file and folder below ``path``, relative, sorted."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def tmp_entries(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.root / "tmp"))
