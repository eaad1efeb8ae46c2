"""BlobStore on real files and a real LMDB index: put/export, resume, bad chunks,
quota, pins and collection, two processes on one root, bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node.roles.storage.errors import (
    BadChunk,
    BlobNotFound,
    ChunkMissing,
    QuotaExceeded,
    StoreUsageError,
)
from node.roles.storage.manifest import KIND_FILE, Manifest, chunk_hash
from node.roles.storage.store import BlobInfo, BlobStore

from .conftest import CS, files_under, tmp_entries, write_random

REPO = Path(__file__).resolve().parents[2]


def manifest_of(data: bytes) -> Manifest:
    """The manifest computed independently of the store."""
    return Manifest(size=len(data), chunk_size=CS, kind=KIND_FILE, encrypted=False,
                    chunk_hashes=tuple(chunk_hash(data[i:i + CS])
                                       for i in range(0, len(data), CS)))


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i:i + CS] for i in range(0, len(data), CS)]


@pytest.mark.parametrize("size", [0, 1, CS - 1, CS, CS + 1, 3 * 1024 * 1024 + 17])
def test_put_export_byte_identical(store: BlobStore, tmp_path: Path, size: int) -> None:
    data = write_random(tmp_path / "in.bin", size, seed=size)
    seen: list[int] = []
    m = store.put_file(tmp_path / "in.bin", chunk_size=CS, progress=seen.append)
    assert m == manifest_of(data)
    assert sum(seen) == size
    assert store.is_complete(m.blob_id) and store.is_pinned(m.blob_id)
    assert store.used_bytes() == size
    got: list[int] = []
    store.export(m.blob_id, tmp_path / "out.bin", progress=got.append)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert sum(got) == size
    with store.open_reader(m.blob_id) as reader:
        assert reader.read() == data
    assert tmp_entries(store) == []


def test_put_same_file_twice_stores_it_once(store: BlobStore, tmp_path: Path) -> None:
    write_random(tmp_path / "a", 5 * CS + 3)
    first = store.put_file(tmp_path / "a", chunk_size=CS, pin=False)
    assert not store.is_pinned(first.blob_id)
    again = store.put_file(tmp_path / "a", chunk_size=CS)
    assert again.blob_id == first.blob_id
    assert store.used_bytes() == 5 * CS + 3
    assert store.is_pinned(first.blob_id)
    assert len(store.list()) == 1


def test_default_chunk_size_is_one_mib(store: BlobStore, tmp_path: Path) -> None:
    write_random(tmp_path / "a", 10)
    assert store.put_file(tmp_path / "a").chunk_size == 1 << 20


def test_list_reports_blob_infos(store: BlobStore, tmp_path: Path) -> None:
    data = write_random(tmp_path / "a", 2 * CS + 1)
    m = store.put_file(tmp_path / "a", chunk_size=CS)
    partial = manifest_of(bytes(3 * CS))
    store.add_manifest(partial)
    store.write_chunk(partial.blob_id, 1, bytes(CS))
    infos = {i.blob_id: i for i in store.list()}
    assert infos[m.blob_id] == BlobInfo(blob_id=m.blob_id, size=len(data), kind=KIND_FILE,
                                        encrypted=False, chunks=3, present=3,
                                        present_bytes=len(data), pinned=True)
    assert infos[m.blob_id].complete
    p = infos[partial.blob_id]
    assert (p.present, p.chunks, p.pinned, p.complete) == (1, 3, False, False)


# --- fetch side: manifests, chunks, resume -----------------------------------

def test_resume_after_reopen(tmp_path: Path) -> None:
    data = write_random(tmp_path / "src", 6 * CS + 100)
    m = manifest_of(data)
    parts = chunks_of(data)
    root = tmp_path / "store"
    with BlobStore.open(root, quota_bytes=1 << 30, durable=True) as s:
        s.add_manifest(m)
        assert s.has_manifest(m.blob_id)
        assert s.missing_chunks(m.blob_id) == list(range(7))
        for i in (0, 3, 6):
            s.write_chunk(m.blob_id, i, parts[i])
    with BlobStore.open(root, quota_bytes=1 << 30) as s:
        assert s.manifest(m.blob_id) == m
        assert s.missing_chunks(m.blob_id) == [1, 2, 4, 5]
        assert s.present_chunks(m.blob_id) == 3
        assert not s.is_complete(m.blob_id)
        assert s.read_chunk(m.blob_id, 3) == parts[3]
        with pytest.raises(ChunkMissing):
            s.read_chunk(m.blob_id, 1)
        with pytest.raises(ChunkMissing):
            s.open_reader(m.blob_id)
        with pytest.raises(ChunkMissing):
            s.export(m.blob_id, tmp_path / "early")
        assert not (tmp_path / "early").exists()
        for i in s.missing_chunks(m.blob_id):
            s.write_chunk(m.blob_id, i, parts[i])
        assert s.is_complete(m.blob_id) and s.missing_chunks(m.blob_id) == []
        assert s.used_bytes() == len(data)
        s.export(m.blob_id, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


def test_write_chunk_is_idempotent(store: BlobStore) -> None:
    data = bytes(range(256)) * 600
    m = manifest_of(data)
    store.add_manifest(m)
    store.add_manifest(m)
    for _ in range(2):
        store.write_chunk(m.blob_id, 0, chunks_of(data)[0])
    assert store.present_chunks(m.blob_id) == 1
    assert store.used_bytes() == CS


@pytest.mark.parametrize("case", ["flipped byte", "short", "long", "other chunk",
                                  "index past end", "negative index"])
def test_bad_chunk_rejected_and_nothing_written(store: BlobStore, case: str) -> None:
    data = os.urandom(2 * CS + 5)
    m = manifest_of(data)
    store.add_manifest(m)
    good = chunks_of(data)
    index, payload = {
        "flipped byte": (0, bytes([good[0][0] ^ 1]) + good[0][1:]),
        "short": (0, good[0][:-1]),
        "long": (2, good[2] + b"\x00"),
        "other chunk": (1, good[0]),
        "index past end": (3, good[2]),
        "negative index": (-1, good[2]),
    }[case]
    with pytest.raises(BadChunk):
        store.write_chunk(m.blob_id, index, payload)
    assert store.missing_chunks(m.blob_id) == [0, 1, 2]
    assert store.used_bytes() == 0
    assert files_under(store.root / "chunks") == []
    assert tmp_entries(store) == []


def test_unknown_blob_is_blob_not_found(store: BlobStore, tmp_path: Path) -> None:
    unknown = b"\x42" * 32
    assert not store.has_manifest(unknown)
    for call in (lambda: store.manifest(unknown), lambda: store.missing_chunks(unknown),
                 lambda: store.present_chunks(unknown), lambda: store.read_chunk(unknown, 0),
                 lambda: store.write_chunk(unknown, 0, b"x"), lambda: store.pin(unknown),
                 lambda: store.unpin(unknown), lambda: store.open_reader(unknown),
                 lambda: store.export(unknown, tmp_path / "x"),
                 lambda: store.manifest(b"short")):
        with pytest.raises(BlobNotFound):
            call()
    assert files_under(store.root / "chunks") == []


def test_corrupt_chunk_on_disk_is_detected_and_dropped(store: BlobStore, tmp_path: Path) -> None:
    data = write_random(tmp_path / "a", 3 * CS)
    m = store.put_file(tmp_path / "a", chunk_size=CS)
    victim = store.root / "chunks" / m.blob_id.hex() / "00001"
    raw = bytearray(victim.read_bytes())
    raw[7] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(BadChunk, match="corrupt on disk"):
        store.export(m.blob_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert store.missing_chunks(m.blob_id) == [1]
    assert store.used_bytes() == 2 * CS
    store.write_chunk(m.blob_id, 1, data[CS:2 * CS])
    store.export(m.blob_id, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


def test_lost_chunk_file_is_reported_missing(store: BlobStore, tmp_path: Path) -> None:
    write_random(tmp_path / "a", 2 * CS)
    m = store.put_file(tmp_path / "a", chunk_size=CS)
    (store.root / "chunks" / m.blob_id.hex() / "00000").unlink()
    with pytest.raises(ChunkMissing, match="lost"):
        store.read_chunk(m.blob_id, 0)
    assert store.missing_chunks(m.blob_id) == [0]
    assert store.used_bytes() == CS


# --- bad input on put and export ---------------------------------------------

def test_put_missing_path(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StoreUsageError, match="does not exist"):
        store.put_file(tmp_path / "nope")
    assert store.list() == [] and tmp_entries(store) == []


def test_put_rejects_bad_chunk_size_and_special_files(store: BlobStore, tmp_path: Path) -> None:
    write_random(tmp_path / "a", 10)
    with pytest.raises(StoreUsageError, match="chunk_size"):
        store.put_file(tmp_path / "a", chunk_size=1000)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(StoreUsageError, match="not a regular file"):
        store.put_file(tmp_path / "fifo")
    assert store.list() == [] and tmp_entries(store) == []


def test_export_refuses_to_clobber(store: BlobStore, tmp_path: Path) -> None:
    data = write_random(tmp_path / "a", 100)
    m = store.put_file(tmp_path / "a", chunk_size=CS)
    (tmp_path / "taken").write_bytes(b"keep")
    with pytest.raises(StoreUsageError, match="exists"):
        store.export(m.blob_id, tmp_path / "taken")
    assert (tmp_path / "taken").read_bytes() == b"keep"
    with pytest.raises(StoreUsageError, match="directory"):
        store.export(m.blob_id, tmp_path)
    with pytest.raises(StoreUsageError, match="does not exist"):
        store.export(m.blob_id, tmp_path / "no" / "such" / "dir")
    store.export(m.blob_id, tmp_path / "taken", overwrite=True)
    assert (tmp_path / "taken").read_bytes() == data


def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    s = BlobStore.open(tmp_path / "s", quota_bytes=1 << 20, durable=False)
    s.close()
    with pytest.raises(StoreUsageError, match="closed"):
        s.list()
    with pytest.raises(StoreUsageError):
        BlobStore.open(tmp_path / "s", quota_bytes=-1)


# --- quota -----------------------------------------------------------------

def test_quota_on_put_leaves_nothing(tmp_path: Path) -> None:
    write_random(tmp_path / "big", 5 * CS)
    with BlobStore.open(tmp_path / "s", quota_bytes=4 * CS, durable=False) as s:
        with pytest.raises(QuotaExceeded):
            s.put_file(tmp_path / "big", chunk_size=CS)
        assert s.list() == [] and s.used_bytes() == 0
        assert files_under(s.root / "chunks") == [] and tmp_entries(s) == []
        write_random(tmp_path / "fits", 4 * CS)
        m = s.put_file(tmp_path / "fits", chunk_size=CS)
        assert s.used_bytes() == 4 * CS
        # storing the same blob again needs no room, even with the quota full
        assert s.put_file(tmp_path / "fits", chunk_size=CS) == m
        with pytest.raises(QuotaExceeded):
            s.put_file(tmp_path / "big", chunk_size=CS)
        assert [i.blob_id for i in s.list()] == [m.blob_id]


def test_quota_on_write_chunk(tmp_path: Path) -> None:
    data = os.urandom(3 * CS)
    m = manifest_of(data)
    with BlobStore.open(tmp_path / "s", quota_bytes=2 * CS, durable=False) as s:
        s.add_manifest(m)
        s.write_chunk(m.blob_id, 0, data[:CS])
        s.write_chunk(m.blob_id, 2, data[2 * CS:])
        with pytest.raises(QuotaExceeded):
            s.write_chunk(m.blob_id, 1, data[CS:2 * CS])
        assert s.missing_chunks(m.blob_id) == [1]
        assert s.used_bytes() == 2 * CS
        assert sorted(os.listdir(s.root / "chunks" / m.blob_id.hex())) == ["00000", "00002"]
        assert tmp_entries(s) == []


# --- pins and collection -------------------------------------------------------

def test_pin_unpin_collect(store: BlobStore, tmp_path: Path) -> None:
    keep_data = write_random(tmp_path / "keep", 2 * CS, seed=1)
    write_random(tmp_path / "drop", 3 * CS, seed=2)
    keep = store.put_file(tmp_path / "keep", chunk_size=CS)
    drop = store.put_file(tmp_path / "drop", chunk_size=CS)
    partial = manifest_of(os.urandom(2 * CS))
    store.add_manifest(partial)
    assert store.collect() == 0  # the partial blob has no chunks yet, but is collected
    assert not store.has_manifest(partial.blob_id)
    store.unpin(drop.blob_id)
    assert not store.is_pinned(drop.blob_id)
    store.pin(drop.blob_id)
    store.unpin(drop.blob_id)
    assert store.collect() == 3 * CS
    assert not store.has_manifest(drop.blob_id)
    assert store.used_bytes() == 2 * CS
    assert sorted(os.listdir(store.root / "chunks")) == [keep.blob_id.hex()]
    assert os.listdir(store.root / "trash") == []
    store.export(keep.blob_id, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == keep_data


def test_collect_removes_unpinned_partial_blob_and_orphans(store: BlobStore) -> None:
    data = os.urandom(2 * CS)
    m = manifest_of(data)
    store.add_manifest(m)
    store.write_chunk(m.blob_id, 1, data[CS:])
    orphan = store.root / "chunks" / ("ab" * 32)
    orphan.mkdir()
    (orphan / "00000").write_bytes(b"left by a crash")
    assert store.collect() == CS
    assert store.list() == [] and store.used_bytes() == 0
    assert os.listdir(store.root / "chunks") == []
    # a collected blob can be fetched again from scratch
    store.add_manifest(m, pin=True)
    assert store.missing_chunks(m.blob_id) == [0, 1]
    store.write_chunk(m.blob_id, 0, data[:CS])
    assert store.collect() == 0 and store.present_chunks(m.blob_id) == 1


def test_stale_staging_of_dead_process_is_swept(tmp_path: Path) -> None:
    root = tmp_path / "s"
    BlobStore.open(root, quota_bytes=1, durable=False).close()
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)
    dead = root / "tmp" / f"{proc.stdout.strip()}-deadbeef"
    dead.mkdir()
    (dead / "00000").write_bytes(b"half")
    mine = root / "tmp" / f"{os.getpid()}-cafe"
    mine.write_bytes(b"in use")
    with BlobStore.open(root, quota_bytes=1, durable=False) as s:
        assert tmp_entries(s) == [mine.name]


# --- several processes on one store ---------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from node.roles.storage.manifest import Manifest
    from node.roles.storage.store import BlobStore
    root, src, parity, cs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = src.read_bytes()
    with BlobStore.open(root, quota_bytes=1 << 30) as s:
        m = Manifest.decode((root.parent / "manifest").read_bytes())
        s.add_manifest(m)
        for i in range(parity, m.chunk_count, 2):
            s.write_chunk(m.blob_id, i, data[i * cs:(i + 1) * cs])
        s.write_chunk(m.blob_id, 0, data[:cs])  # both write chunk 0: must stay idempotent
        other = s.put_file(src.with_name(f"own{parity}"), chunk_size=cs)
        print(other.blob_id.hex())
""")


def test_two_processes_share_one_store(tmp_path: Path) -> None:
    data = write_random(tmp_path / "src", 40 * CS + 9)
    for parity in (0, 1):
        write_random(tmp_path / f"own{parity}", 3 * CS, seed=10 + parity)
    m = manifest_of(data)
    (tmp_path / "manifest").write_bytes(m.encode())
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with BlobStore.open(root, quota_bytes=1 << 30, durable=False) as mine:
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(tmp_path / "src"),
                                   str(p), str(CS)], env=env, stdout=subprocess.PIPE, text=True)
                 for p in (0, 1)]
        outs = [p.communicate(timeout=120)[0].strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        assert mine.is_complete(m.blob_id)
        ids = {i.blob_id.hex() for i in mine.list()}
        assert ids == {m.blob_id.hex(), *outs}
        assert mine.used_bytes() == len(data) + 6 * CS
        mine.export(m.blob_id, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data


def test_two_stores_in_one_process_share_the_environment(tmp_path: Path) -> None:
    a = BlobStore.open(tmp_path / "s", quota_bytes=1 << 20, durable=False)
    b = BlobStore.open(tmp_path / "s", quota_bytes=1 << 20, durable=False)
    write_random(tmp_path / "f", 100)
    m = a.put_file(tmp_path / "f", chunk_size=CS)
    a.close()
    assert b.is_complete(m.blob_id)
    b.close()


# --- memory ------------------------------------------------------------------------

MEMORY_PROBE = textwrap.dedent("""
    import os, resource, sys
    from pathlib import Path
    import nacl.signing
    from node.roles.storage.store import BlobStore
    work = Path(sys.argv[1])
    size = 200 * 1024 * 1024
    block = os.urandom(1 << 20)
    with open(work / "big", "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    key = nacl.signing.SigningKey(b"\\x07" * 32)
    def peak_kib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base = peak_kib()
    with BlobStore.open(work / "store", quota_bytes=1 << 40, durable=False) as s:
        m = s.put_file(work / "big")
        s.export(m.blob_id, work / "out")
        assert os.path.getsize(work / "out") == size
        os.unlink(work / "out")
        e = s.put_file(work / "big", recipients=[bytes(key.verify_key)])
        s.export(e.blob_id, work / "out", seed=bytes(key))
        assert os.path.getsize(work / "out") == size
    print((peak_kib() - base) // 1024)
""")


@pytest.mark.slow
def test_put_and_export_of_200_mb_keep_memory_bounded(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    growth_mb = int(proc.stdout.strip())
    assert growth_mb < 50, f"peak RSS grew by {growth_mb} MB"


def test_threads_write_chunks_concurrently(store: BlobStore) -> None:
    """The daemon calls the store from worker threads: one env, many txns."""
    import threading

    data = os.urandom(24 * CS)
    m = manifest_of(data)
    store.add_manifest(m)
    parts = chunks_of(data)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, len(parts), 3):
                store.write_chunk(m.blob_id, i, parts[i])
                store.write_chunk(m.blob_id, 0, parts[0])
                store.read_chunk(m.blob_id, i)
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert store.is_complete(m.blob_id) and store.used_bytes() == len(data)


def test_store_opened_before_fork_is_refused_in_the_child(tmp_path: Path) -> None:
    """LMDB handles must not cross a fork: the child gets a clear error, both for
    the inherited store and for opening the same root again."""
    parent = BlobStore.open(tmp_path / "s", quota_bytes=1 << 20, durable=False)
    write_random(tmp_path / "f", 100)
    m = parent.put_file(tmp_path / "f", chunk_size=CS)
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        code = 1
        try:
            try:
                parent.list()
            except StoreUsageError:
                try:
                    BlobStore.open(tmp_path / "s", quota_bytes=1 << 20)
                except StoreUsageError as exc:
                    code = 0 if "forked" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.is_complete(m.blob_id)
    parent.close()
