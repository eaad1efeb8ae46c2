"""Directory blobs: deterministic archives, refused inputs, safe unpacking."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from node.roles.storage.archive import tree_size, unpack_archive, write_archive
from node.roles.storage.errors import StoreUsageError, UnsafeArchive, UnsupportedFile
from node.roles.storage.manifest import KIND_DIR, Manifest, chunk_hash
from node.roles.storage.store import BlobStore

from .conftest import CS, files_under, write_random


def make_model_dir(root: Path) -> Path:
    """A small stand-in for a transformers model folder, with nesting, an empty
    folder, a non-ASCII and a very long name."""
    (root / "tokenizer").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "config.json").write_text('{"model_type": "llama"}')
    write_random(root / "model.safetensors", 3 * CS + 11, seed=3)
    (root / "tokenizer" / "vocab-ü.txt").write_text("a\nb\n")
    (root / "tokenizer" / ("long" * 40 + ".bin")).write_bytes(b"\x00\x01")
    return root


def tar_bytes(src: Path) -> bytes:
    buf = io.BytesIO()
    write_archive(src, buf)
    return buf.getvalue()


def tree(path: Path) -> dict[str, bytes | None]:
    """Relative path -> contents (None for a folder)."""
    return {str(p.relative_to(path)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(path.rglob("*"))}


def test_archive_is_deterministic(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "m")
    first = tar_bytes(src)
    assert tar_bytes(src) == first
    # a copy made at another time, with other mtimes and modes, packs to the same bytes
    copy = make_model_dir(tmp_path / "copy")
    os.utime(copy / "config.json", (1_000_000, 1_000_000))
    os.utime(copy / "tokenizer", (5, 5))
    os.chmod(copy / "model.safetensors", 0o600)
    os.chmod(copy / "empty", 0o700)
    assert tar_bytes(copy) == first


def test_archive_entries_are_normalised_and_sorted(tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "m")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(src))) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == ["config.json", "empty", "model.safetensors", "tokenizer",
                     "tokenizer/" + "long" * 40 + ".bin", "tokenizer/vocab-ü.txt"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)
        assert m.isdir() or m.isreg()


def test_same_dir_gives_same_blob_id(store: BlobStore, tmp_path: Path) -> None:
    a = store.put_file(make_model_dir(tmp_path / "a"), chunk_size=CS)
    b_dir = make_model_dir(tmp_path / "b")
    os.utime(b_dir / "model.safetensors", (42, 42))
    b = store.put_file(b_dir, chunk_size=CS)
    assert a.kind == KIND_DIR and a.blob_id == b.blob_id
    (b_dir / "config.json").write_text('{"model_type": "gpt2"}')
    assert store.put_file(b_dir, chunk_size=CS).blob_id != a.blob_id


def test_dir_round_trip_through_store(store: BlobStore, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "m")
    seen: list[int] = []
    m = store.put_file(src, chunk_size=CS, progress=seen.append)
    assert sum(seen) == tree_size(src)
    store.export(m.blob_id, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(src)
    # an existing empty folder is fine, a non-empty one is refused
    (tmp_path / "empty_out").mkdir()
    store.export(m.blob_id, tmp_path / "empty_out")
    assert tree(tmp_path / "empty_out") == tree(src)
    with pytest.raises(StoreUsageError, match="not empty"):
        store.export(m.blob_id, tmp_path / "out")
    # raw export: the archive itself
    store.export(m.blob_id, tmp_path / "m.tar", raw=True)
    assert (tmp_path / "m.tar").read_bytes() == tar_bytes(src)


def test_symlink_refused(store: BlobStore, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "m")
    (src / "link").symlink_to(src / "config.json")
    with pytest.raises(UnsupportedFile, match="symlink"):
        store.put_file(src, chunk_size=CS)
    assert store.list() == []
    os.unlink(src / "link")
    os.mkfifo(src / "tokenizer" / "pipe")
    with pytest.raises(UnsupportedFile, match="not a regular file"):
        store.put_file(src, chunk_size=CS)
    assert store.list() == [] and os.listdir(store.root / "tmp") == []


def test_symlinked_root_dir_refused(store: BlobStore, tmp_path: Path) -> None:
    src = make_model_dir(tmp_path / "m")
    (tmp_path / "alias").symlink_to(src)
    with pytest.raises(StoreUsageError, match="symlink"):
        store.put_file(tmp_path / "alias", chunk_size=CS)


# --- hostile archives ----------------------------------------------------------------

def _evil_tar(*members: tuple[str, bytes, str]) -> bytes:
    """A tar with the given (type, payload-or-linkname, name) members."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, payload, name in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = payload.decode()
            tar.addfile(info)
    return buf.getvalue()


HOSTILE = {
    "absolute path": [("file", b"x", "/tmp/evil")],
    "dot dot": [("file", b"x", "../evil")],
    "dot dot inside": [("dir", b"", "a"), ("file", b"x", "a/../../evil")],
    "symlink": [("sym", b"/etc/passwd", "passwd")],
    "symlink then write through it": [("sym", b"/tmp", "d"), ("file", b"x", "d/evil")],
    "hardlink": [("file", b"x", "a"), ("hard", b"a", "b")],
    "char device": [("chr", b"", "null")],
    "fifo": [("fifo", b"", "pipe")],
    "duplicate file": [("file", b"x", "a"), ("file", b"y", "a")],
    "file over a folder": [("dir", b"", "a"), ("file", b"y", "a")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_unsafe_members_refused_and_nothing_left(tmp_path: Path, case: str) -> None:
    (tmp_path / "work").mkdir()
    out = tmp_path / "work" / "out"
    with pytest.raises(UnsafeArchive):
        unpack_archive(io.BytesIO(_evil_tar(*HOSTILE[case])), out)
    assert os.listdir(tmp_path / "work") == []
    assert not (tmp_path / "evil").exists()


def test_safe_control_archive_unpacks(tmp_path: Path) -> None:
    """Control for the hostile cases: the same builder with plain members works."""
    unpack_archive(io.BytesIO(_evil_tar(("dir", b"", "a"), ("file", b"x", "a/b"),
                                        ("file", b"y", "./c"))), tmp_path / "out")
    assert tree(tmp_path / "out") == {"a": None, "a/b": b"x", "c": b"y"}


def test_garbage_is_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive):
        unpack_archive(io.BytesIO(b"this is not a tar file" * 100), tmp_path / "out")
    assert files_under(tmp_path) == []


def test_hostile_dir_blob_is_refused_on_export(store: BlobStore, tmp_path: Path) -> None:
    """A KIND_DIR blob is only as safe as its tar: the store's export refuses it too."""
    data = _evil_tar(("file", b"x", "../evil"))
    m = Manifest(size=len(data), chunk_size=CS, kind=KIND_DIR, encrypted=False,
                 chunk_hashes=(chunk_hash(data),))
    store.add_manifest(m)
    store.write_chunk(m.blob_id, 0, data)
    (tmp_path / "work").mkdir()
    with pytest.raises(UnsafeArchive):
        store.export(m.blob_id, tmp_path / "work" / "out")
    assert os.listdir(tmp_path / "work") == [] and not (tmp_path / "evil").exists()


def test_write_archive_needs_a_directory(tmp_path: Path) -> None:
    write_random(tmp_path / "f", 3)
    with pytest.raises(StoreUsageError):
        write_archive(tmp_path / "f", io.BytesIO())
