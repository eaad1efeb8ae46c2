"""The per-role chain cursor: each committed block handled once, in order, across restarts."""

from __future__ import annotations

import pytest
import trio

from node.roles import ChainFollower, CommittedBlock, RoleDB
from tests.daemon._chainkit import Producer, close_chain, make_genesis, open_chain

SEEN = b"seen"


@pytest.fixture
def producer(tmp_path):
    genesis, signers, accounts = make_genesis()
    chain = open_chain(tmp_path / "chain", genesis)
    yield Producer(chain, signers, accounts)
    close_chain(chain)


def recorder(log: list[tuple[int, int]]):
    def handle(block: CommittedBlock, txn) -> None:
        log.append((block.height, len(block.txs)))
        txn.put(block.height.to_bytes(8, "big"), b"1", db=db_holder[0].table(SEEN))
    return handle


db_holder: list[RoleDB] = []


def open_db(path) -> RoleDB:
    db = RoleDB(path, (SEEN,))
    db_holder[:] = [db]
    return db


def seen_heights(db: RoleDB) -> list[int]:
    with db.read() as txn:
        return [int.from_bytes(k, "big") for k, _ in txn.cursor(db=db.table(SEEN))]


def test_each_block_once_in_order_and_resumed_after_restart(producer, tmp_path):
    other = producer.accounts[1].address
    producer.produce((producer.transfer(0, other, 5),))
    producer.produce()
    db = open_db(tmp_path / "role")
    follower = ChainFollower(db, producer.chain)
    log: list[tuple[int, int]] = []
    assert follower.handle_available(recorder(log)) == 2
    assert log == [(1, 1), (2, 0)]
    assert follower.handle_available(recorder(log)) == 0
    db.close()

    producer.produce((producer.transfer(0, other, 6), producer.transfer(0, other, 7)))
    db = open_db(tmp_path / "role")  # a restart: a new environment on the same files
    follower = ChainFollower(db, producer.chain)
    assert follower.cursor == 2
    follower.handle_available(recorder(log))
    assert log == [(1, 1), (2, 0), (3, 2)]
    assert seen_heights(db) == [1, 2, 3]
    db.close()


def test_decoded_txs_carry_their_result_code(producer, tmp_path):
    other = producer.accounts[1].address
    ok = producer.transfer(0, other, 5)
    too_much = producer.transfer(1, other, 10**12)  # fails in the block: balance short
    producer.produce((ok, too_much))
    db = open_db(tmp_path / "role")
    follower = ChainFollower(db, producer.chain)
    block = follower.committed_block(1)
    assert [t.tx.sender for t in block.txs] == [producer.accounts[0].address,
                                                producer.accounts[1].address]
    assert [t.ok for t in block.txs] == [True, False]
    db.close()


def test_a_failing_handler_commits_nothing_and_the_block_is_retried(producer, tmp_path):
    producer.produce()
    producer.produce()
    db = open_db(tmp_path / "role")
    follower = ChainFollower(db, producer.chain)
    calls: list[int] = []

    def flaky(block: CommittedBlock, txn) -> None:
        calls.append(block.height)
        txn.put(block.height.to_bytes(8, "big"), b"1", db=db.table(SEEN))
        if block.height == 2 and calls.count(2) == 1:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        follower.handle_available(flaky)
    assert follower.cursor == 1 and seen_heights(db) == [1]
    follower.handle_available(flaky)
    assert calls == [1, 2, 2] and follower.cursor == 2 and seen_heights(db) == [1, 2]
    db.close()


def test_start_height_skips_history(producer, tmp_path):
    for _ in range(3):
        producer.produce()
    db = open_db(tmp_path / "role")
    follower = ChainFollower(db, producer.chain, start_height=3)
    log: list[tuple[int, int]] = []
    follower.handle_available(recorder(log))
    assert [h for h, _ in log] == [3]
    db.close()


async def test_follow_wakes_on_each_commit(producer, tmp_path):
    db = open_db(tmp_path / "role")
    follower = ChainFollower(db, producer.chain)
    log: list[tuple[int, int]] = []
    handle = recorder(log)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follower.follow, handle)
            for height in (1, 2, 3):
                producer.produce()
                follower.notify()
                while len(log) < height:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert [h for h, _ in log] == [1, 2, 3]
    db.close()
