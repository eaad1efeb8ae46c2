"""The blob index's LMDB plumbing: one environment per process, record codecs.

Tables: ``manifests`` (blob id -> encoded manifest), ``blobs`` (blob id ->
``Record``), ``chunks`` (blob id + u32 index -> empty: the chunk is on disk)
and ``meta`` (``used`` -> u64 bytes of chunk data present).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import lmdb

from consensus.encoding import decode, encode

from .errors import StoreUsageError
from .manifest import Manifest

MAP_SIZE = 4 << 30  # virtual; the file grows only as the index does
DB_NAMES = (b"manifests", b"blobs", b"chunks", b"meta")
USED = b"used"


@dataclass(slots=True)
class Record:
    """The ``blobs`` table's summary of one blob."""

    pinned: bool
    present: int
    present_bytes: int
    size: int
    chunks: int
    kind: int
    encrypted: bool

    @classmethod
    def new(cls, m: Manifest, pinned: bool) -> Record:
        return cls(pinned, 0, 0, m.size, m.chunk_count, m.kind, m.encrypted)

    def encode(self) -> bytes:
        return encode([int(self.pinned), self.present, self.present_bytes, self.size,
                       self.chunks, self.kind, int(self.encrypted)])

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        p, n, b, size, chunks, kind, enc = cast(list[int], decode(raw))
        return cls(bool(p), n, b, size, chunks, kind, bool(enc))


@dataclass(slots=True)
class SharedEnv:
    """A process's one handle on a store's index, shared by its BlobStores."""

    env: lmdb.Environment
    dbs: dict[bytes, lmdb._Database]
    refs: int
    pid: int  # LMDB handles must not cross a fork


_ENVS: dict[str, SharedEnv] = {}
_ENVS_LOCK = threading.Lock()


def acquire_env(path: Path, durable: bool) -> SharedEnv:
    """Open the index once per process (LMDB forbids a second open in one
    process) and its tables once per environment; later opens share it."""
    key = str(path.resolve())
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is not None and shared.pid != os.getpid():
            raise StoreUsageError(f"the blob index at {path} was opened before this process "
                                  "forked, and LMDB cannot open it again here; open stores "
                                  "after starting processes (multiprocessing 'spawn')")
        if shared is not None:
            shared.refs += 1
            return shared
        try:
            env = lmdb.open(key, map_size=MAP_SIZE, max_dbs=len(DB_NAMES), subdir=True,
                            sync=durable, metasync=durable, readahead=False, max_readers=256)
        except lmdb.Error as exc:
            raise StoreUsageError(f"cannot open blob index at {path}: {exc}") from None
        shared = SharedEnv(env, {name: env.open_db(name) for name in DB_NAMES}, 1, os.getpid())
        _ENVS[key] = shared
        return shared


def release_env(path: Path) -> None:
    key = str(path.resolve())
    with _ENVS_LOCK:
        shared = _ENVS.get(key)
        if shared is None or shared.pid != os.getpid():
            return
        shared.refs -= 1
        if not shared.refs:
            del _ENVS[key]
            shared.env.close()


def chunk_key(blob_id: bytes, index: int) -> bytes:
    return blob_id + index.to_bytes(4, "big")


