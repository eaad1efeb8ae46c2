"""What the transfer protocol needs of a store: ``ChunkSource`` to serve, ``ChunkSink`` to fetch.

``BlobStore`` satisfies both; tests use small in-memory fakes that implement
the same protocols, so the two cannot drift apart. Every method blocks (disk
and LMDB): the transfer code calls them in worker threads, so an
implementation must be thread-safe.
"""

from __future__ import annotations

from typing import Protocol

from .manifest import Manifest


class ChunkSource(Protocol):
    """Read side: what a provider serves from."""

    def has_manifest(self, blob_id: bytes) -> bool: ...

    def manifest(self, blob_id: bytes) -> Manifest:
        """Raises BlobNotFound."""
        ...

    def present_chunks(self, blob_id: bytes) -> int:
        """Chunks on disk. Raises BlobNotFound."""
        ...

    def read_chunk(self, blob_id: bytes, index: int) -> bytes:
        """The chunk's bytes. Raises BlobNotFound, ChunkMissing, BadChunk (corrupt on disk)."""
        ...


class ChunkSink(ChunkSource, Protocol):
    """Write side: what a fetch writes into (and resumes from)."""

    def add_manifest(self, manifest: Manifest) -> None:
        """Start (or resume) a fetch of ``manifest.blob_id``; idempotent."""
        ...

    def missing_chunks(self, blob_id: bytes) -> list[int]:
        """Indices still needed, ascending. Raises BlobNotFound."""
        ...

    def write_chunk(self, blob_id: bytes, index: int, data: bytes) -> None:
        """Verify then store one chunk. Raises BadChunk, QuotaExceeded, BlobNotFound."""
        ...
