"""Helpers for the transfer tests: real libp2p hosts in one process, in-memory chunk stores.

``MemStore`` implements the ``ChunkSink`` protocol (and so ``ChunkSource``)
the way ``BlobStore`` does (verify before write, typed errors), and counts
reads and writes per chunk so tests can check what was fetched from whom.
Wrappers make a provider lie (corrupt chunks, a wrong manifest) or stall.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from net import NetConfig, Transport, open_transport
from node.roles.storage.errors import BadChunk, BlobNotFound, ChunkMissing
from node.roles.storage.manifest import KIND_FILE, Manifest, chunk_hash
from node.roles.storage.source import ChunkSink, ChunkSource
from node.roles.storage.transfer import BlobServer

CS = 64 * 1024
"""The smallest legal chunk size keeps multi-chunk blobs small."""


def blob(size: int, seed: int = 0, chunk_size: int = CS) -> tuple[bytes, Manifest]:
    data = random.Random(seed).randbytes(size)
    hashes = tuple(chunk_hash(data[i : i + chunk_size]) for i in range(0, size, chunk_size))
    manifest = Manifest(
        size=size, chunk_size=chunk_size, kind=KIND_FILE, encrypted=False, chunk_hashes=hashes
    )
    return data, manifest


class MemStore:
    """An in-memory ChunkSink; thread-safe like BlobStore (the transfer code uses threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._manifests: dict[bytes, Manifest] = {}
        self._chunks: dict[tuple[bytes, int], bytes] = {}
        self.reads: Counter[int] = Counter()
        self.writes: Counter[int] = Counter()
        self.on_write: Callable[[int], None] | None = None

    @classmethod
    def holding(cls, data: bytes, manifest: Manifest, chunks: range | None = None) -> MemStore:
        """A store with ``manifest`` and the given chunks of ``data`` (all by default)."""
        store = cls()
        store.add_manifest(manifest)
        cs = manifest.chunk_size
        for i in chunks if chunks is not None else range(manifest.chunk_count):
            store._chunks[(manifest.blob_id, i)] = data[i * cs : (i + 1) * cs]
        return store

    def has_manifest(self, blob_id: bytes) -> bool:
        return blob_id in self._manifests

    def manifest(self, blob_id: bytes) -> Manifest:
        try:
            return self._manifests[blob_id]
        except KeyError:
            raise BlobNotFound(f"no blob {blob_id.hex()}") from None

    def present_chunks(self, blob_id: bytes) -> int:
        self.manifest(blob_id)
        with self._lock:
            return sum(1 for b, _ in self._chunks if b == blob_id)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        self.manifest(blob_id)
        with self._lock:
            self.reads[index] += 1
            try:
                return self._chunks[(blob_id, index)]
            except KeyError:
                raise ChunkMissing(f"chunk {index} not here") from None

    def add_manifest(self, manifest: Manifest) -> None:
        self._manifests.setdefault(manifest.blob_id, manifest)

    def missing_chunks(self, blob_id: bytes) -> list[int]:
        m = self.manifest(blob_id)
        with self._lock:
            return [i for i in range(m.chunk_count) if (blob_id, i) not in self._chunks]

    def write_chunk(self, blob_id: bytes, index: int, data: bytes) -> None:
        m = self.manifest(blob_id)
        if not 0 <= index < m.chunk_count or chunk_hash(data) != m.chunk_hashes[index]:
            raise BadChunk(f"chunk {index} does not match")
        with self._lock:
            self.writes[index] += 1
            self._chunks[(blob_id, index)] = bytes(data)
        if self.on_write is not None:
            self.on_write(index)

    def assemble(self, blob_id: bytes) -> bytes:
        m = self.manifest(blob_id)
        return b"".join(self._chunks[(blob_id, i)] for i in range(m.chunk_count))


class CorruptingSource:
    """A provider that serves chunks with one byte flipped (all, or those in ``bad``)."""

    def __init__(self, inner: MemStore, bad: set[int] | None = None) -> None:
        self.inner = inner
        self.bad = bad

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        data = self.inner.read_chunk(blob_id, index)
        if self.bad is None or index in self.bad:
            return bytes([data[0] ^ 1]) + data[1:]
        return data


class WrongManifestSource:
    """A provider that answers MANIFEST with the manifest of another blob."""

    def __init__(self, inner: MemStore, other: Manifest) -> None:
        self.inner = inner
        self.other = other

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def manifest(self, blob_id: bytes) -> Manifest:
        self.inner.manifest(blob_id)
        return self.other


class StallingSource:
    """Serves ``serve`` chunks, then blocks every read until released (a stalled disk)."""

    def __init__(self, inner: MemStore, serve: int) -> None:
        self.inner = inner
        self.left = serve
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        if self.left <= 0:
            self.release.wait(20)
        self.left -= 1
        return self.inner.read_chunk(blob_id, index)


class SlowSource:
    """Sleeps ``delay`` seconds per chunk read (in the server's worker thread)."""

    def __init__(self, inner: MemStore, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        time.sleep(self.delay)
        return self.inner.read_chunk(blob_id, index)


def _check_protocols() -> None:
    """The fake must satisfy the protocols the real store satisfies (checked by type checkers)."""
    _sink: ChunkSink = MemStore()
    _source: ChunkSource = MemStore()


def config(name: str, **kw: Any) -> NetConfig:
    kw.setdefault("stream_timeout_s", 5.0)
    kw.setdefault("handler_timeout_s", 5.0)
    kw.setdefault("redial_interval_s", 0.2)
    kw.setdefault("dial_timeout_s", 2.0)
    return NetConfig(seed=hashlib.sha256(b"oml-transfer-test:" + name.encode()).digest(), **kw)


@asynccontextmanager
async def hosts(*names: str) -> AsyncIterator[list[Transport]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_transport(config(n))) for n in names]


async def link(a: Transport, b: Transport) -> None:
    """Connect ``a`` to ``b`` and wait until both see the connection."""
    await a.connect(b.listen_addrs[0])
    with trio.fail_after(5):
        while not (a.is_connected(b.peer_id) and b.is_connected(a.peer_id)):
            await trio.sleep(0.01)


def serve(transport: Transport, source: Any) -> BlobServer:
    server = BlobServer(source)
    server.register(transport)
    return server
