"""File write-ahead log: length-prefixed, CRC-checked records in per-height segments.

Why it exists: a validator must never sign two different votes for one
height/round/step, even across a crash. The core emits ``Persist(record)``
before it broadcasts its own proposals and votes; the driver appends the record
here, and :meth:`FileWAL.append` returns only after ``fdatasync``. After a
crash the driver reads :meth:`FileWAL.records` and replays them through the
core, so the node resumes exactly where its durable state left off.

On-disk format. A WAL is a directory of segment files ``seg-<index>.wal``
with consecutive 16-digit indexes. Each segment starts with an 8-byte magic
and holds frames::

    length  u32 big-endian   payload length in bytes
    height  u64 big-endian   consensus height the record belongs to
    hcrc    u32 big-endian   zlib.crc32 over (length || height)
    crc     u32 big-endian   zlib.crc32 over (length || height || payload)
    payload length bytes     the record, opaque to this module

The header has its own CRC so that a damaged length can never pass for a
torn tail: a length is trusted only once ``hcrc`` vouches for it.

The height comes from ``height_of(record)``, a function the caller injects
(the core knows its own record format; this module does not). Keeping it in
the frame makes :meth:`FileWAL.truncate_before_height` a matter of deleting
whole files, never parsing records. A new segment starts whenever a record's
height is above every height in the active segment, so one segment normally
holds exactly one height.

Damage. A crash can tear only the end of the newest segment (appends are
sequential and each is synced before the next), so on open a frame whose
header is incomplete, or fails ``hcrc`` with only zeros after it, or whose
(vouched-for) payload runs past the end of the file, or fails ``crc`` with
nothing but zeros after it, is cut off and reported in
:attr:`FileWAL.repairs`; that is normal after power loss. Anything else
that fails to parse (a bad frame followed by more data, damage in an older
segment, a missing segment) means the disk lost data that was acknowledged
as durable: :class:`WALCorruptError`, and the node must halt rather than risk
signing twice.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)

MAGIC = b"OMLWAL1\n"
_FRAME = struct.Struct(">IQII")  # length, height, header crc, frame crc
_HEAD = struct.Struct(">IQ")
FRAME_HEADER_SIZE = _FRAME.size
#: Largest record accepted; a proposal with a full block fits comfortably.
MAX_RECORD_SIZE = 64 * 1024 * 1024
_SEGMENT_RE = re.compile(r"^seg-(\d{16})\.wal$")
_LOCK_NAME = "LOCK"
_READ_CHUNK = 1 << 20


class WALError(Exception):
    """Base of the WAL errors."""


class WALUsageError(WALError):
    """Our own code misused the WAL (closed, record too large, wrong type)."""


class WALLockedError(WALError):
    """Another process holds this WAL open; two writers could double-sign."""


class WALCorruptError(WALError):
    """Data that was acknowledged durable is unreadable: a broken invariant, halt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WALRepair:
    """What open-time repair cut off the tail of the newest segment, and why."""

    segment: str
    offset: int
    dropped_bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Segment:
    index: int
    path: Path
    min_height: int
    max_height: int
    size: int


def _segment_name(index: int) -> str:
    return f"seg-{index:016d}.wal"


def _frame(height: int, record: bytes) -> bytes:
    hcrc = zlib.crc32(_HEAD.pack(len(record), height))
    return _FRAME.pack(len(record), height, hcrc, zlib.crc32(record, hcrc)) + record


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_datasync = getattr(os, "fdatasync", os.fsync)


@dataclass(slots=True)
class _Scan:
    """Result of parsing one segment file."""

    frames: list[tuple[int, int, int]]  # (offset of payload, length, height)
    good_end: int
    bad_reason: str | None
    bad_is_tail: bool


def _scan(data: bytes) -> _Scan:
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        # A segment whose magic is missing or partial was torn right after it
        # was created (it never held a record), unless other bytes are there.
        torn = len(data) < len(MAGIC) and (MAGIC.startswith(data) or not any(data))
        return _Scan([], 0, "incomplete segment header" if torn else "bad magic", torn)
    pos = len(MAGIC)
    frames: list[tuple[int, int, int]] = []
    size = len(data)
    while pos < size:
        if size - pos < FRAME_HEADER_SIZE:
            return _Scan(frames, pos, "incomplete frame header", True)
        length, height, hcrc, crc = _FRAME.unpack_from(data, pos)
        want_hcrc = zlib.crc32(_HEAD.pack(length, height))
        if want_hcrc != hcrc:
            # A header torn mid-write has only zero fill (or nothing) after it;
            # anything else is a damaged header inside the log.
            return _Scan(frames, pos, f"header CRC mismatch in frame at offset {pos}",
                         not any(data[pos + FRAME_HEADER_SIZE:]))
        end = pos + FRAME_HEADER_SIZE + length
        if length > MAX_RECORD_SIZE:
            return _Scan(frames, pos, f"frame length {length} over limit", False)
        if end > size:
            # The header is intact, so the length is real: the payload was cut short.
            return _Scan(frames, pos, "incomplete frame payload", True)
        payload = data[pos + FRAME_HEADER_SIZE:end]
        if zlib.crc32(payload, hcrc) != crc:
            # Torn tail: the bad frame is last, or only zero fill follows it
            # (a filesystem may extend the size before the data lands).
            tail = end == size or not any(data[end:])
            return _Scan(frames, pos, f"CRC mismatch in frame at offset {pos}", tail)
        frames.append((pos + FRAME_HEADER_SIZE, length, height))
        pos = end
    return _Scan(frames, pos, None, False)


class FileWAL:
    """A durable, crash-repairing write-ahead log in one directory.

    Implements the consensus ``WAL`` protocol (``append``, ``records``,
    ``truncate_before_height``) plus :meth:`append_many`, which syncs once for
    a batch. One process at a time: the directory is locked with ``flock``.

    Args:
        directory: created if missing.
        height_of: maps a record to the consensus height it belongs to.
        sync: ``False`` skips fsync (tests and benchmarks only: a crash may
            then lose acknowledged records).

    Raises:
        WALLockedError: another process has the WAL open.
        WALCorruptError: damage other than a torn tail (see module docs).
    """

    def __init__(self, directory: str | os.PathLike[str], *,
                 height_of: Callable[[bytes], int], sync: bool = True) -> None:
        self._dir = Path(directory)
        self._height_of = height_of
        self._sync = sync
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = os.open(self._dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WALLockedError(f"WAL {self._dir} is locked by another process") from None
            raise
        self._fd: int | None = None
        self._broken = False
        self.repairs: list[WALRepair] = []
        try:
            self._segments = self._open_segments()
        except BaseException:
            self.close()
            raise

    # --- opening and repair ----------------------------------------------

    def _list_segment_files(self) -> list[tuple[int, Path]]:
        found = []
        for entry in self._dir.iterdir():
            m = _SEGMENT_RE.match(entry.name)
            if m:
                found.append((int(m.group(1)), entry))
            elif entry.name.endswith(".tmp"):
                entry.unlink()  # a rewrite interrupted before its rename: never live data
        found.sort()
        for (a, _), (b, _) in itertools.pairwise(found):
            if b != a + 1:
                raise WALCorruptError(f"WAL {self._dir}: segment {a + 1} missing")
        return found

    def _open_segments(self) -> list[_Segment]:
        files = self._list_segment_files()
        segments: list[_Segment] = []
        for i, (index, path) in enumerate(files):
            data = path.read_bytes()
            scan = _scan(data)
            if scan.bad_reason is not None:
                if not (i == len(files) - 1 and scan.bad_is_tail):
                    raise WALCorruptError(
                        f"WAL {path}: {scan.bad_reason} at offset {scan.good_end}")
                if not self._repair_tail(path, scan, len(data)):
                    continue
            heights = [h for _, _, h in scan.frames]
            segments.append(_Segment(index, path, min(heights, default=0),
                                     max(heights, default=0), scan.good_end))
        self._next_index = segments[-1].index + 1 if segments else 0
        return segments

    def _repair_tail(self, path: Path, scan: _Scan, size: int) -> bool:
        """Cut a torn tail off ``path``; return False if the whole file went."""
        repair = WALRepair(segment=path.name, offset=scan.good_end,
                           dropped_bytes=size - scan.good_end, reason=scan.bad_reason or "")
        log.warning("WAL torn tail repaired: %s", repair)
        self.repairs.append(repair)
        if scan.good_end < len(MAGIC):
            # Not even the magic survived: the segment never held a record.
            path.unlink()
            _fsync_dir(self._dir)
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(fd, scan.good_end)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    # --- writing ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise WALUsageError("WAL is closed")
        if self._broken:
            raise WALUsageError("WAL hit an I/O error it could not undo; reopen it to repair")

    def _new_segment(self, height: int) -> None:
        self._close_active()
        index = self._next_index
        self._next_index += 1
        path = self._dir / _segment_name(index)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        os.write(fd, MAGIC)
        if self._sync:
            _datasync(fd)
            _fsync_dir(self._dir)
        self._fd = fd
        self._segments.append(_Segment(index, path, height, height, len(MAGIC)))

    def _active_fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)
        return self._fd

    def _close_active(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, record: bytes) -> None:
        if not isinstance(record, (bytes, bytearray)):
            raise WALUsageError(f"record must be bytes, got {type(record).__name__}")
        if len(record) > MAX_RECORD_SIZE:
            raise WALUsageError(f"record of {len(record)} bytes over {MAX_RECORD_SIZE}")
        height = self._height_of(bytes(record))
        if not isinstance(height, int) or not 0 <= height < 2**64:
            raise WALUsageError(f"height_of returned {height!r}, not a u64")
        if not self._segments or height > self._segments[-1].max_height:
            self._new_segment(height)
        frame = _frame(height, bytes(record))
        fd = self._active_fd()
        seg = self._segments[-1]
        try:
            written = os.write(fd, frame)
            while written < len(frame):  # os.write may write less on some filesystems
                written += os.write(fd, frame[written:])
        except OSError:
            # Never leave a half frame that later appends would bury mid-log.
            try:
                os.ftruncate(fd, seg.size)
            except OSError:
                self._broken = True
            raise
        self._segments[-1] = _Segment(seg.index, seg.path, min(seg.min_height, height),
                                      max(seg.max_height, height), seg.size + len(frame))

    def append(self, record: bytes) -> None:
        """Append one record; durable on disk when this returns.

        Raises:
            WALUsageError: the WAL is closed or the record is not bytes/too big.
        """
        self.append_many((record,))

    def append_many(self, records: Iterable[bytes]) -> None:
        """Append several records with one sync; all durable when this returns.

        A crash during the call may keep any prefix of ``records``.
        """
        self._check_open()
        wrote = False
        for record in records:
            self._write(record)
            wrote = True
        if wrote and self._sync and self._fd is not None:
            _datasync(self._fd)

    # --- reading ---------------------------------------------------------

    def records(self) -> Iterator[bytes]:
        """Yield every record in append order (a snapshot of the live segments).

        Raises:
            WALCorruptError: a segment changed under us into something unreadable.
        """
        self._check_open()
        for seg in list(self._segments):
            with open(seg.path, "rb") as f:
                data = f.read(seg.size)
            scan = _scan(data)
            if scan.bad_reason is not None:
                raise WALCorruptError(f"WAL {seg.path}: {scan.bad_reason}")
            for start, length, _height in scan.frames:
                yield data[start:start + length]

    def heights(self) -> list[tuple[int, int]]:
        """(min, max) height of each live segment, oldest first (for tests and ops)."""
        return [(s.min_height, s.max_height) for s in self._segments]

    # --- truncation ------------------------------------------------------

    def truncate_before_height(self, height: int) -> None:
        """Drop every record whose height is below ``height``.

        Whole segments are deleted; a segment that mixes older and newer
        heights (only if records were appended out of height order) is
        rewritten atomically (temp file, fsync, rename).
        """
        self._check_open()
        if not isinstance(height, int) or height < 0:
            raise WALUsageError(f"height must be a non-negative int, got {height!r}")
        keep: list[_Segment] = []
        changed = False
        for seg in self._segments:
            if seg.max_height < height:
                if seg is self._segments[-1]:
                    self._close_active()
                seg.path.unlink()
                changed = True
            elif seg.min_height < height:
                keep.append(self._rewrite(seg, height))
                changed = True
            else:
                keep.append(seg)
        if changed:
            _fsync_dir(self._dir)
        self._segments = keep

    def _rewrite(self, seg: _Segment, height: int) -> _Segment:
        with open(seg.path, "rb") as f:
            data = f.read(seg.size)
        scan = _scan(data)
        if scan.bad_reason is not None:
            raise WALCorruptError(f"WAL {seg.path}: {scan.bad_reason}")
        out = bytearray(MAGIC)
        heights = []
        for start, length, h in scan.frames:
            if h >= height:
                out += _frame(h, data[start:start + length])
                heights.append(h)
        tmp = seg.path.with_name(seg.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, bytes(out))
            os.fsync(fd)
        finally:
            os.close(fd)
        if seg is self._segments[-1]:
            self._close_active()
        os.replace(tmp, seg.path)
        return _Segment(seg.index, seg.path, min(heights), max(heights), len(out))

    # --- lifecycle -------------------------------------------------------

    def close(self) -> None:
        """Close files and release the lock; further calls raise WALUsageError."""
        self._close_active()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the fd releases the flock
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
