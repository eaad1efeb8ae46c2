"""Block store on LMDB (bytes level): save/load by height and hash, commits, reopen,
pruning, linkage and typed errors, and serving peers through node.sync's BlockSource shape."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb
import pytest

from consensus.blockstore import (
    MAX_DBS_NEEDED,
    BlockHashMismatchError,
    BlockNotFoundError,
    BlockStore,
    BlockStoreCorruptError,
    BlockStoreUsageError,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fill(store: BlockStore, first: int, last: int, prev: bytes = b"") -> list[bytes]:
    """Save synthetic blocks first..last; block i's hash is sha256(b"block i")."""
    hashes = []
    for i in range(first, last + 1):
        block_hash = h(b"block %d" % i)
        store.save_block_bytes(
            height=i, block_hash=block_hash, prev_hash=prev, block=b"B%d" % i,
            last_commit=(b"C%d" % (i - 1)) if i > first else None,
            seen_commit=b"S%d" % i)
        prev = block_hash
        hashes.append(block_hash)
    return hashes


def test_save_load_by_height_and_hash(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "db") as store:
        assert store.range() == (0, 0)
        hashes = fill(store, 1, 5)
        assert store.range() == (1, 5) and store.base == 1 and store.height == 5
        for i, bh in enumerate(hashes, start=1):
            assert store.block_bytes(i) == (bh, b"B%d" % i)
            assert store.height_of_hash(bh) == i
            assert store.block_bytes_by_hash(bh) == (i, b"B%d" % i)
        # Canonical commits come from the next block; the latest has only the seen commit.
        assert [store.commit_bytes(i) for i in range(1, 6)] == [b"C1", b"C2", b"C3", b"C4", b"S5"]
        assert store.seen_commit_bytes(5) == b"S5"
        with pytest.raises(BlockNotFoundError):
            store.seen_commit_bytes(4)  # only the latest seen commit is kept
        assert [x[0] for x in store.iter_block_bytes(0, 100)] == [1, 2, 3, 4, 5]
        assert [x[0] for x in store.iter_block_bytes(2, 4)] == [2, 3]


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "db") as store:
        hashes = fill(store, 1, 3)
    with BlockStore.open(tmp_path / "db") as store:
        assert store.range() == (1, 3)
        assert store.block_bytes(3) == (hashes[2], b"B3")
        assert store.commit_bytes(3) == b"S3"
        store.save_block_bytes(height=4, block_hash=h(b"block 4"), prev_hash=hashes[2],
                               block=b"B4", last_commit=b"C3", seen_commit=b"S4")
    with BlockStore.open(tmp_path / "db") as store:
        assert store.range() == (1, 4)
        assert store.commit_bytes(3) == b"C3"


def test_missing_heights_and_hashes_are_typed(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "db") as store:
        with pytest.raises(BlockNotFoundError):
            store.block_bytes(1)
        fill(store, 1, 2)
        for bad in (0, 3, 99):
            with pytest.raises(BlockNotFoundError):
                store.block_bytes(bad)
        with pytest.raises(BlockNotFoundError):
            store.height_of_hash(h(b"nope"))
        with pytest.raises(BlockNotFoundError):
            store.block_bytes_by_hash(h(b"nope"))
        with pytest.raises(BlockNotFoundError):
            store.commit_bytes(3)
        assert isinstance(BlockNotFoundError("x"), LookupError)


def test_bad_saves_are_rejected_and_change_nothing(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "db") as store:
        hashes = fill(store, 1, 3)
        good = {"block_hash": h(b"block 4"), "prev_hash": hashes[2], "block": b"B4",
            "last_commit": b"C3", "seen_commit": b"S4"}
        with pytest.raises(BlockStoreUsageError, match="next height is 4"):
            store.save_block_bytes(height=5, **good)
        with pytest.raises(BlockStoreUsageError):
            store.save_block_bytes(height=3, **good)
        with pytest.raises(BlockHashMismatchError):
            store.save_block_bytes(height=4, **{**good, "prev_hash": hashes[1]})
        with pytest.raises(BlockHashMismatchError, match="already stored"):
            store.save_block_bytes(height=4, **{**good, "block_hash": hashes[0]})
        with pytest.raises(BlockStoreUsageError, match="commit"):
            store.save_block_bytes(height=4, **{**good, "last_commit": None})
        with pytest.raises(BlockStoreUsageError):
            store.save_block_bytes(height=4, **{**good, "block_hash": b"short"})
        with pytest.raises(BlockStoreUsageError):
            store.save_block_bytes(height=0, **good)
        assert store.range() == (1, 3)
        assert store.commit_bytes(3) == b"S3"
        store.save_block_bytes(height=4, **good)
        assert store.range() == (1, 4)


def test_store_may_start_above_one(tmp_path: Path) -> None:
    """A node started from a snapshot stores blocks from its snapshot height on."""
    with BlockStore.open(tmp_path / "db") as store:
        fill(store, 100, 102, prev=h(b"block 99"))
        assert store.range() == (100, 102)
        assert store.sync_block(99) is None
        assert store.sync_block(100) == (b"B100", b"C100")


def test_prune_before(tmp_path: Path) -> None:
    with BlockStore.open(tmp_path / "db") as store:
        hashes = fill(store, 1, 6)
        assert store.prune_before(4) == 3
        assert store.range() == (4, 6)
        with pytest.raises(BlockNotFoundError):
            store.block_bytes(3)
        with pytest.raises(BlockNotFoundError):
            store.height_of_hash(hashes[0])
        with pytest.raises(BlockNotFoundError):
            store.commit_bytes(2)
        assert store.block_bytes(4) == (hashes[3], b"B4")
        assert store.prune_before(2) == 0
        with pytest.raises(BlockStoreUsageError):
            store.prune_before(7)
    with BlockStore.open(tmp_path / "db") as store:
        assert store.range() == (4, 6)


def test_shared_environment_with_prefixes(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "env"), max_dbs=2 * MAX_DBS_NEEDED + 2, map_size=1 << 26)
    try:
        a = BlockStore(env, prefix="a.")
        b = BlockStore(env, prefix="b.")
        fill(a, 1, 2)
        assert a.height == 2 and b.height == 0
        a.close()  # does not close an environment it did not open
        assert a.block_bytes(1)[1] == b"B1"
    finally:
        env.close()


def test_corrupt_entries_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with BlockStore.open(path) as store:
        hashes = fill(store, 1, 3)
    env = lmdb.open(str(path), max_dbs=MAX_DBS_NEEDED)
    with env.begin(write=True) as txn:
        txn.delete((2).to_bytes(8, "big"), db=env.open_db(b"block.blocks", txn=txn))
        txn.put(hashes[0], (3).to_bytes(8, "big"), db=env.open_db(b"block.hashes", txn=txn))
        txn.put(b"base", b"\x01", db=env.open_db(b"block.meta", txn=txn))
    env.close()
    with BlockStore.open(path) as store, pytest.raises(BlockStoreCorruptError):
        store.range()
    env = lmdb.open(str(path), max_dbs=MAX_DBS_NEEDED)
    with env.begin(write=True) as txn:
        txn.put(b"base", (1).to_bytes(8, "big"), db=env.open_db(b"block.meta", txn=txn))
    env.close()
    with BlockStore.open(path) as store:
        with pytest.raises(BlockStoreCorruptError, match="absent"):
            store.block_bytes(2)
        with pytest.raises(BlockStoreCorruptError, match="hash index"):
            store.block_bytes_by_hash(hashes[0])


def test_serves_block_source_for_node_sync(tmp_path: Path) -> None:
    from node.sync import decode_blocks, encode_blocks_request, serve_request

    with BlockStore.open(tmp_path / "db") as store:
        fill(store, 1, 4)
        assert (store.sync_base(), store.sync_height()) == (1, 4)
        assert store.sync_block(2) == (b"B2", b"C2")
        assert store.sync_block(4) == (b"B4", b"S4")
        assert store.sync_block(5) is None
        answer = serve_request(store, encode_blocks_request(3, 10))
        assert decode_blocks(answer, 3, 10, 1 << 20) == [(b"B3", b"C3"), (b"B4", b"S4")]
