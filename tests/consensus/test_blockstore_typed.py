"""Block store with the consensus types: real signed blocks, reopen, hash checks on load,
and a catch-up node fed from another node's store over the node.sync wire format."""

from __future__ import annotations

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
from consensus.catchup import CatchUp
from consensus.validators import verify_commit
from tests.consensus._persist_chain import Chain, make_chain


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain(8)


def fill(store: BlockStore, chain: Chain, upto: int) -> None:
    for block, commit in zip(chain.blocks[:upto], chain.commits[:upto]):
        store.save_block(block, commit)


def test_typed_round_trip_and_reopen(tmp_path: Path, chain: Chain) -> None:
    with BlockStore.open(tmp_path / "bs") as store:
        fill(store, chain, 5)
    with BlockStore.open(tmp_path / "bs") as store:
        assert store.range() == (1, 5)
        for h in range(1, 6):
            block = store.load_block(h)
            assert block == chain.blocks[h - 1]
            assert store.load_block_by_hash(block.id()) == block
            commit = store.load_commit(h)
            verify_commit(chain.chain_id, chain.valset, block.id(), h, commit)
        # The canonical commit for 1..4 is the one carried by the next block.
        assert store.load_commit(3) == chain.blocks[3].last_commit
        assert store.load_seen_commit(5) == chain.commits[4]
        fill_rest = zip(chain.blocks[5:], chain.commits[5:])
        for block, commit in fill_rest:
            store.save_block(block, commit)
        assert store.height == 8


def test_typed_save_checks(tmp_path: Path, chain: Chain) -> None:
    with BlockStore.open(tmp_path / "bs") as store:
        fill(store, chain, 2)
        with pytest.raises(BlockStoreUsageError, match="seen commit"):
            store.save_block(chain.blocks[2], chain.commits[3])
        with pytest.raises(BlockStoreUsageError):
            store.save_block(chain.blocks[3], chain.commits[3])  # skips height 3
        fork = Chain(chain.valset, chain.signers, chain_id=chain.chain_id)
        fork.extend(3, txs_per_block=1)  # same heights, different blocks
        with pytest.raises(BlockHashMismatchError):
            store.save_block(fork.blocks[2], fork.commits[2])
        assert store.height == 2
        with pytest.raises(BlockNotFoundError):
            store.load_block(3)


def test_damaged_block_entry_is_detected_on_load(tmp_path: Path, chain: Chain) -> None:
    path = tmp_path / "bs"
    with BlockStore.open(path) as store:
        fill(store, chain, 3)
    env = lmdb.open(str(path), max_dbs=MAX_DBS_NEEDED)
    with env.begin(write=True) as txn:
        db = env.open_db(b"block.blocks", txn=txn)
        raw = txn.get((2).to_bytes(8, "big"), db=db)
        # Keep the indexed hash, store block 3's bytes under height 2.
        raw3 = txn.get((3).to_bytes(8, "big"), db=db)
        txn.put((2).to_bytes(8, "big"), raw[:32] + raw3[32:], db=db)
        txn.put((1).to_bytes(8, "big"), raw[:32] + b"\x93\x01", db=db)
        commits = env.open_db(b"block.commits", txn=txn)
        txn.put((1).to_bytes(8, "big"), chain.commits[1].encode(), db=commits)
    env.close()
    with BlockStore.open(path) as store:
        with pytest.raises(BlockStoreCorruptError, match="index says"):
            store.load_block(2)
        with pytest.raises(BlockStoreCorruptError, match="decode"):
            store.load_block(1)
        with pytest.raises(BlockStoreCorruptError, match="is for 2"):
            store.load_commit(1)
        assert store.load_block(3) == chain.blocks[2]


def test_catch_up_from_another_nodes_store(tmp_path: Path, chain: Chain) -> None:
    """Node B, empty, catches up from node A's store through node.sync's codec."""
    from node.sync import decode_blocks, encode_blocks_request, serve_request

    with BlockStore.open(tmp_path / "a") as a, BlockStore.open(tmp_path / "b") as b:
        fill(a, chain, 8)
        cu = CatchUp(chain_id=chain.chain_id, valset=chain.valset, height=0, last_block_id=b"",
                     batch=3)
        cu.on_peer_status("A", a.sync_height(), a.sync_base())
        rounds = 0
        while not cu.caught_up:
            rounds += 1
            assert rounds < 10
            for req in cu.next_requests():
                answer = serve_request(a, encode_blocks_request(req.first, req.last))
                pairs = decode_blocks(answer, req.first, req.last, 1 << 22)
                result = cu.on_blocks(req.peer, pairs)
                assert result.rejected == ()
                for v in result.ready:
                    b.save_block(v.block, v.commit)
        assert b.range() == (1, 8)
        assert [b.load_block(h).id() for h in range(1, 9)] == [x.id() for x in chain.blocks]
