"""Write secret files: owner-only from the first byte, never clobbered by accident.

Fingerprint files hold the keys and responses in the clear and sidecars hold
the salts; a file created with the default mode and ``chmod``-ed afterwards is
readable by everyone for a moment (and forever if the process dies between
the two calls). So the bytes go to a temporary sibling opened with
``os.open(..., O_CREAT | O_EXCL, 0o600)`` and the name is published at the
end: with ``os.replace`` when the caller asked to overwrite, else with
``os.link``, which fails atomically if the name already exists, so two
writers racing for one path cannot silently replace each other's file.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

PRIVATE_MODE = 0o600


class PrivateFileError(ValueError):
    """A secret file could not be written (the message names the path)."""


class PrivateFileExists(PrivateFileError):
    """The target exists and the caller did not ask to overwrite it."""


def write_private(path: Path | str, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` with mode 0600, atomically.

    Args:
        path: the file to create.
        data: its whole content.
        overwrite: replace an existing file; otherwise an existing ``path``
            raises :class:`PrivateFileExists` and nothing is changed.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        PrivateFileExists: ``path`` exists and ``overwrite`` is False.
        PrivateFileError: the directory is missing or not writable.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise PrivateFileExists(f"{path} exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except OSError as exc:
        raise PrivateFileError(f"cannot create {tmp}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_exclusive(tmp, path)
    except OSError as exc:
        raise PrivateFileError(f"cannot write {path}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def _link_exclusive(tmp: Path, path: Path) -> None:
    """Publish ``tmp`` as ``path`` unless ``path`` exists (atomic where links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise PrivateFileExists(f"{path} exists; refusing to overwrite it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        # a file system without hard links: the existence check above is the guard
        if path.exists():
            raise PrivateFileExists(f"{path} exists; refusing to overwrite it") from None
        os.replace(tmp, path)
