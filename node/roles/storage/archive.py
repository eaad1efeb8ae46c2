"""Directories as one blob: a deterministic tar, and its safe unpacking.

A model folder is stored as ONE blob (``KIND_DIR``) holding a tar stream, not
as a manifest of file blobs: one id names the whole folder, one fetch gets it,
and the transfer protocol needs no notion of files. The price (changing one
file changes the id) fits model folders, which are written once.

The archive is a function of the folder's names, contents and the
file/directory distinction only, so the same folder always gives the same
bytes and hence the same blob id, whoever packs it, whenever:

- POSIX.1-2001 (PAX) tar, written in stream mode (``w|``) with the default
  10240-byte records; entries in sorted order of their relative path (compared
  component by component, by UTF-8 bytes), directories before their contents;
  the root folder itself is not an entry;
- every entry: ``mtime`` 0, ``uid``/``gid`` 0, ``uname``/``gname`` empty,
  mode 0644 for files and 0755 for directories;
- regular files and directories only: a symlink, device, FIFO or socket is
  refused with ``UnsupportedFile`` rather than silently skipped or followed.

Unpacking trusts nothing in the tar: members must be regular files or
directories with relative paths free of ``..``, absolute parts and NULs; they
are written with fixed modes into a fresh sibling folder that is renamed into
place only when the whole archive has unpacked, so a bad archive leaves
nothing behind. An existing non-empty output folder is never overwritten.
Both directions stream through ``tarfile``'s stream modes: memory is bounded
by one copy buffer whatever the folder's size.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .errors import StoreUsageError, UnsafeArchive, UnsupportedFile

Progress = Callable[[int], None]
_COPY = 1 << 16
FILE_MODE = 0o644
DIR_MODE = 0o755


def _sort_key(entry: os.DirEntry[str]) -> bytes:
    return os.fsencode(entry.name)


def _walk(root: Path, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Path, bool]]:
    """Yield (archive name, path, is_dir) below ``root / rel`` in archive order."""
    with os.scandir(root / rel) as it:
        entries = sorted(it, key=_sort_key)
    for entry in entries:
        name = rel / entry.name
        path = Path(entry.path)
        if entry.is_symlink():
            raise UnsupportedFile(f"{path} is a symlink; only files and directories are stored")
        if entry.is_dir(follow_symlinks=False):
            yield name, path, True
            yield from _walk(root, name)
        elif entry.is_file(follow_symlinks=False):
            yield name, path, False
        else:
            raise UnsupportedFile(f"{path} is not a regular file or directory")


def _info(name: PurePosixPath, size: int, is_dir: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(str(name))
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = 0 if is_dir else size
    info.mode = DIR_MODE if is_dir else FILE_MODE
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tree_size(src: Path) -> int:
    """Total bytes of the regular files under ``src`` (for a progress total)."""
    return sum(p.stat().st_size for _, p, d in _walk(Path(src), PurePosixPath()) if not d)


class _CountingReader:
    """File wrapper reporting bytes read to ``progress``."""

    def __init__(self, f: BinaryIO, progress: Progress | None) -> None:
        self._f = f
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data and self._progress is not None:
            self._progress(len(data))
        return data


def write_archive(src: Path, out: BinaryIO, *, progress: Progress | None = None) -> None:
    """Write the deterministic tar of directory ``src`` to ``out``.

    ``progress`` gets the number of file bytes read, as they are read.

    Raises:
        StoreUsageError: ``src`` is not a directory.
        UnsupportedFile: it holds a symlink or a special file.
    """
    src = Path(src)
    if not src.is_dir() or src.is_symlink():
        raise StoreUsageError(f"{src} is not a directory")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, path, is_dir in _walk(src, PurePosixPath()):
            if is_dir:
                tar.addfile(_info(name, 0, True))
                continue
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                tar.addfile(_info(name, size, False), _CountingReader(f, progress))


def _safe_parts(name: str) -> tuple[str, ...]:
    if not name or "\x00" in name or name.startswith("/") or "\\" in name:
        raise UnsafeArchive(f"refusing archive member {name!r}: not a plain relative path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if not parts or any(p == ".." for p in parts):
        raise UnsafeArchive(f"refusing archive member {name!r}: escapes the output folder")
    return parts


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise StoreUsageError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise StoreUsageError(f"{out} exists and is not empty; refusing to overwrite")
    if not out.parent.is_dir():
        raise StoreUsageError(f"{out.parent} does not exist")


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
                   progress: Progress | None) -> None:
    parts = _safe_parts(member.name)
    target = dest.joinpath(*parts)
    if member.isdir():
        target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        return
    if not member.isreg():
        raise UnsafeArchive(f"refusing archive member {member.name!r}: not a regular file "
                            "or directory (links, devices and FIFOs are never unpacked)")
    target.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    src = tar.extractfile(member)
    assert src is not None  # a regular member always has a file object
    # O_EXCL: a duplicate member never overwrites an earlier one; O_NOFOLLOW
    # is belt and braces (we never create links, so none can be in ``dest``)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        while block := src.read(_COPY):
            f.write(block)
            if progress is not None:
                progress(len(block))


def unpack_archive(source: BinaryIO, out: Path, *, progress: Progress | None = None) -> None:
    """Unpack a tar stream into the new or empty folder ``out``, safely.

    Raises:
        StoreUsageError: ``out`` exists and is not an empty folder.
        UnsafeArchive: a member is a link or special file, escapes ``out``,
            collides with another, or the stream is not a valid tar.
    """
    out = Path(out)
    _check_out(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        try:
            with tarfile.open(fileobj=source, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _unpack_member(tar, member, staging, progress)
            # read to the end: tar stops at its end marker, but the layers
            # below (decryption) authenticate the stream only when drained
            while source.read(_COPY):
                pass
        except (tarfile.TarError, FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise UnsafeArchive(f"bad archive: {type(exc).__name__}: {exc}") from None
        staging.chmod(DIR_MODE)
        if out.is_dir():
            out.rmdir()  # checked empty above; rename cannot replace a non-empty dir anyway
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

