"""Streaming pieces of the blob store: cutting input into staged chunk files,
reading a blob back chunk by chunk, writing an exported file atomically.

Each holds at most a chunk or a read block in memory, whatever the blob size.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from .errors import StoreUsageError
from .manifest import MAX_CHUNKS, chunk_hash

Progress = Callable[[int], None]
READ_BLOCK = 1 << 20


def chunk_name(index: int) -> str:
    """File name of chunk ``index`` in its blob's folder (sorts in index order)."""
    return f"{index:05d}"


def write_file(path: Path, data: bytes, durable: bool) -> None:
    with open(path, "xb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())


class Stager:
    """Cuts a byte stream into chunk files in a staging folder, hashing as it goes.

    Once the staged bytes exceed the room under the quota it stops writing
    (and deletes what it wrote) but keeps hashing: the blob may already be
    here, in which case the put succeeds without needing any room.
    """

    def __init__(self, folder: Path, chunk_size: int, room: Callable[[], int],
                 durable: bool) -> None:
        self._folder = folder
        self._chunk_size = chunk_size
        self._room = room
        self._durable = durable
        self._buf = bytearray()
        self.hashes: list[bytes] = []
        self.size = 0
        self.discarded = False

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) >= self._chunk_size:
            self._emit(bytes(self._buf[: self._chunk_size]))
            del self._buf[: self._chunk_size]
        return len(data)

    def finish(self) -> None:
        if self._buf:
            self._emit(bytes(self._buf))
            self._buf = bytearray()

    def _emit(self, chunk: bytes) -> None:
        if len(self.hashes) >= MAX_CHUNKS:
            raise StoreUsageError(f"input exceeds {MAX_CHUNKS} chunks of {self._chunk_size} "
                                  "bytes; use a larger chunk_size")
        index = len(self.hashes)
        self.hashes.append(chunk_hash(chunk))
        self.size += len(chunk)
        if not self.discarded and self.size > self._room():
            self.discarded = True
            for entry in os.scandir(self._folder):
                os.unlink(entry.path)
        if not self.discarded:
            write_file(self._folder / chunk_name(index), chunk, self._durable)


def copy_file(path: Path, sink: BinaryIO, progress: Progress | None) -> None:
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            sink.write(block)
            if progress is not None:
                progress(len(block))


def _export_file(source: BinaryIO, out: Path, *, overwrite: bool, durable: bool) -> None:
    if out.is_dir():
        raise StoreUsageError(f"{out} is a directory; give a file path")
    if out.exists() and not overwrite:
        raise StoreUsageError(f"{out} exists; refusing to overwrite it")
    if not out.parent.is_dir():
        raise StoreUsageError(f"{out.parent} does not exist")
    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(8)}"
    try:
        with open(tmp, "xb") as f:
            while block := source.read(READ_BLOCK):
                f.write(block)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


def export_file(source: BinaryIO, out: Path, *, overwrite: bool, durable: bool) -> None:
    if out.is_dir():
        raise StoreUsageError(f"{out} is a directory; give a file path")
    if out.exists() and not overwrite:
        raise StoreUsageError(f"{out} exists; refusing to overwrite it")
    if not out.parent.is_dir():
        raise StoreUsageError(f"{out.parent} does not exist")
    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(8)}"
    try:
        with open(tmp, "xb") as f:
            while block := source.read(READ_BLOCK):
                f.write(block)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


class BlobReader(io.RawIOBase):
    """Reads a complete blob chunk by chunk; ``read_chunk(i)`` returns chunk
    ``i`` verified (the store's ``read_chunk``), so every byte handed out has
    been checked against the manifest."""

    def __init__(self, read_chunk: Callable[[int], bytes], chunks: int,
                 progress: Progress | None) -> None:
        super().__init__()
        self._read_chunk = read_chunk
        self._chunks = chunks
        self._next = 0
        self._buf = b""
        self._pos = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._buf):
            if self._next >= self._chunks:
                return 0
            self._buf = self._read_chunk(self._next)
            self._pos = 0
            self._next += 1
            if self._progress is not None:
                self._progress(len(self._buf))
        n = min(len(target), len(self._buf) - self._pos)
        target[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n
