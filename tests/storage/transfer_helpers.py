"""Helpers for the transfer tests: real libp2p hosts in one process, real BlobStores.

``Counting`` wraps a ``BlobStore`` and counts reads and writes per chunk, so
tests can check what was fetched from whom and that nothing verified was
fetched twice. Other wrappers make a provider lie (corrupt chunks, a wrong
manifest), stall or go slow.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from net import NetConfig, Transport, open_transport
from node.roles.storage.manifest import KIND_FILE, Manifest, chunk_hash
from node.roles.storage.source import ChunkSink, ChunkSource
from node.roles.storage.store import BlobStore
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


class Counting:
    """Wraps a store: counts chunk reads and writes per index, and calls ``on_write``.

    ``on_write`` runs in the transfer code's worker thread.
    """

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.reads: Counter[int] = Counter()
        self.writes: Counter[int] = Counter()
        self.on_write: Callable[[int], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        with self._lock:
            self.reads[index] += 1
        return self.inner.read_chunk(blob_id, index)

    def write_chunk(self, blob_id: bytes, index: int, data: bytes) -> None:
        self.inner.write_chunk(blob_id, index, data)
        with self._lock:
            self.writes[index] += 1
        if self.on_write is not None:
            self.on_write(index)


class Stores:
    """Real BlobStores under one tmp dir, closed together."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: list[BlobStore] = []

    def new(self, quota_bytes: int = 1 << 30) -> Counting:
        store = BlobStore.open(
            self.root / f"s{len(self._open)}", quota_bytes=quota_bytes, durable=False
        )
        self._open.append(store)
        return Counting(store)

    def holding(
        self, data: bytes, manifest: Manifest, chunks: Iterable[int] | None = None
    ) -> Counting:
        """A store with ``manifest`` and the given chunks of ``data`` (all by default)."""
        store = self.new()
        store.add_manifest(manifest)
        cs = manifest.chunk_size
        for i in chunks if chunks is not None else range(manifest.chunk_count):
            store.inner.write_chunk(manifest.blob_id, i, data[i * cs : (i + 1) * cs])
        return store

    def close(self) -> None:
        for store in self._open:
            store.close()


def assemble(source: ChunkSource, blob_id: bytes) -> bytes:
    m = source.manifest(blob_id)
    return b"".join(source.read_chunk(blob_id, i) for i in range(m.chunk_count))


class CorruptingSource:
    """A provider that serves chunks with one byte flipped (all, or those in ``bad``)."""

    def __init__(self, inner: Counting, bad: set[int] | None = None) -> None:
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

    def __init__(self, inner: Counting, other: Manifest) -> None:
        self.inner = inner
        self.other = other

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def manifest(self, blob_id: bytes) -> Manifest:
        self.inner.manifest(blob_id)
        return self.other


class StallingSource:
    """Serves ``serve`` chunks, then blocks every read until released (a stalled disk)."""

    def __init__(self, inner: Counting, serve: int) -> None:
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

    def __init__(self, inner: Counting, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        # Fault injection, not a wait: this provider is slow on purpose, so the
        # fetcher's deadlines and work sharing have something to act on. Tests
        # still wait on conditions (chunks counted), never on this delay.
        time.sleep(self.delay)
        return self.inner.read_chunk(blob_id, index)


def _check_protocols(store: BlobStore) -> None:
    """BlobStore satisfies the protocols the transfer code needs (checked by type checkers)."""
    _sink: ChunkSink = store
    _source: ChunkSource = store


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
