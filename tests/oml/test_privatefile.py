"""oml.privatefile: secret files are 0600 from creation and never clobbered by accident."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oml.privatefile import PrivateFileError, PrivateFileExists, write_private


def test_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        p = write_private(tmp_path / "s", b"secret")
    finally:
        os.umask(old)
    assert p.read_bytes() == b"secret" and p.stat().st_mode & 0o777 == 0o600
    assert [q.name for q in tmp_path.iterdir()] == ["s"]  # no temp file left behind


def test_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    p = tmp_path / "s"
    p.write_bytes(b"old")
    with pytest.raises(PrivateFileExists):
        write_private(p, b"new")
    assert p.read_bytes() == b"old"
    write_private(p, b"new", overwrite=True)
    assert p.read_bytes() == b"new" and p.stat().st_mode & 0o777 == 0o600
    assert sorted(q.name for q in tmp_path.iterdir()) == ["s"]


def test_missing_directory_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(PrivateFileError, match="cannot create"):
        write_private(tmp_path / "no" / "s", b"x")


def test_fingerprint_set_save_is_private(tmp_path: Path, fpset) -> None:
    p = tmp_path / "f.jsonl"
    fpset.save(p)
    assert p.stat().st_mode & 0o777 == 0o600
    with pytest.raises(PrivateFileExists):
        fpset.save(p, overwrite=False)
    fpset.save(p)  # the library default still replaces (backward compatible)
