"""node.driver: the real consensus core driven with trio timers, the file WAL and a fake network."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from consensus.encoding import encode
from consensus.messages import VoteMessage, encode_message
from consensus.vote import Vote, VoteType
from consensus.wal import FileWAL
from consensus.wal_api import record_height
from node.config import Config, with_changes
from node.driver import ConsensusDriver
from node.mempool import Mempool
from node.sync import BlockSyncer

from ._chainkit import close_chain, make_genesis, open_chain
from ._fakes import FakeTransport

FAST = with_changes(Config(), consensus={"timeout_commit_ms": 20, "timeout_propose_ms": 500})


def _driver(tmp: Path, n_validators: int = 1):
    genesis, signers, accounts = make_genesis(n_validators)
    chain = open_chain(tmp / "chain", genesis)
    mempool = Mempool(FAST.mempool, chain.ledger.check_tx)
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
    transport = FakeTransport("me")
    driver = ConsensusDriver(config=FAST, chain=chain, mempool=mempool, signer=signers[0],
                             transport=transport, syncer=None, wal_dir=tmp / "wal",
                             max_gossip_bytes=1 << 20)
    driver.syncer = BlockSyncer(transport, lambda: chain.height, driver.commit_fetched)
    return driver, chain, mempool, accounts, transport


async def _run_until(driver: ConsensusDriver, chain, height: int, timeout: float = 20) -> None:
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            while chain.height < height:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


def _wal_heights(path: Path) -> list[int]:
    with FileWAL(path, height_of=record_height) as wal:
        return [record_height(r) for r in wal.records()]


async def test_single_validator_commits_mempool_txs_and_resumes_after_restart(
        tmp_path: Path) -> None:
    from node.ledger import TransferBody, build_tx

    driver, chain, mempool, accounts, transport = _driver(tmp_path)
    tx = build_tx(accounts[0], chain.chain_id, 0, TransferBody(to=accounts[1].address, amount=42))
    assert mempool.add(tx).accepted
    await _run_until(driver, chain, 3)
    assert len(mempool) == 0
    from node.mempool import tx_hash
    found = chain.indexed_tx(tx_hash(tx))
    assert found is not None and found.code == 0
    assert chain.ledger.height == chain.height
    assert chain.state.app_hash == chain.ledger.app_hash
    # nothing on gossip, and a lone validator has nobody to send its messages to
    assert transport.published == [] and transport.sent == []
    reached = chain.height
    # committed heights' records are dropped: restore would skip them anyway
    assert all(h > reached for h in _wal_heights(tmp_path / "wal"))
    genesis = chain.genesis
    close_chain(chain)

    # restart on the same data: resumes after the stored height, same WAL
    chain2 = open_chain(tmp_path / "chain", genesis)
    assert chain2.recover() == 0
    assert chain2.height == reached
    signer = driver.signer
    mempool2 = Mempool(FAST.mempool, chain2.ledger.check_tx)
    t2 = FakeTransport("me2")
    d2 = ConsensusDriver(config=FAST, chain=chain2, mempool=mempool2, signer=signer,
                         transport=t2, syncer=None, wal_dir=tmp_path / "wal",
                         max_gossip_bytes=1 << 20)
    d2.syncer = BlockSyncer(t2, lambda: chain2.height, d2.commit_fetched)
    try:
        await _run_until(d2, chain2, reached + 2)
        assert chain2.block(reached + 1).header.prev_block_id == chain2.block(reached).id()
        acct = chain2.ledger.account(accounts[1].address)
        assert acct is not None and acct.balance == 10**9 + 42
    finally:
        close_chain(chain2)


def test_admit_drops_malformed_and_foreign_messages(tmp_path: Path) -> None:
    driver, chain, _mempool, _accounts, _t = _driver(tmp_path, n_validators=4)
    try:
        assert driver.admit(b"\xc1") is None
        assert driver.admit(encode([2, [1, 2]])) is None
        assert driver.admit(b"") is None
        # a vote whose index names another validator's slot
        from consensus.crypto import PrivateKey, Signer
        stranger = Signer(PrivateKey(b"\x33" * 32))
        forged = Vote.create(stranger, chain.chain_id, type=VoteType.PREVOTE, height=1, round=0,
                             block_id=b"", validator_index=0)
        assert driver.admit(encode_message(VoteMessage(vote=forged))) is None
        good = Vote.create(driver.signer, chain.chain_id, type=VoteType.PREVOTE, height=1,
                           round=0, block_id=b"",
                           validator_index=chain.valset.index_of(driver.signer.address))
        assert driver.admit(encode_message(VoteMessage(vote=good))) == VoteMessage(vote=good)
        assert driver.stats["bad_messages"] == 4
    finally:
        close_chain(chain)


@pytest.mark.parametrize("size", [2, 1 << 21])
def test_validator_rejects_bad_sizes(tmp_path: Path, size: int) -> None:
    driver, chain, *_ = _driver(tmp_path)
    try:
        assert driver.admit(b"\x92" + b"\x00" * (size - 1)) is None
    finally:
        close_chain(chain)


def test_proposal_skips_gapped_txs_at_the_head_of_the_pool(tmp_path: Path) -> None:
    from node.ledger import TransferBody, build_tx

    driver, chain, mempool, accounts, _t = _driver(tmp_path)
    try:
        gapped = [build_tx(accounts[0], chain.chain_id, n, TransferBody(
            to=accounts[1].address, amount=1)) for n in range(5, 25)]  # nonces 0-4 missing
        ready = [build_tx(accounts[1], chain.chain_id, n, TransferBody(
            to=accounts[0].address, amount=1)) for n in range(3)]
        for tx in gapped + ready:
            assert mempool.add(tx).accepted
        budget = sum(len(t) for t in gapped)  # the old FIFO reap would take only gapped txs
        assert driver.app.propose_txs(1, budget) == ready
    finally:
        close_chain(chain)


class _Crash(Exception):
    pass


async def test_crash_between_execute_and_store_resumes_without_executing_twice(
        tmp_path: Path) -> None:
    """The core executed block 3 (ledger committed) but the process died before storing it."""
    from node.ledger import TransferBody, build_tx

    driver, chain, mempool, accounts, _t = _driver(tmp_path)
    genesis, signer = chain.genesis, driver.signer
    tx = build_tx(accounts[0], chain.chain_id, 0, TransferBody(to=accounts[1].address, amount=5))
    real_store = chain.store_committed

    def crashing_store(block, commit, state, result):
        if block.height == 3:
            raise _Crash()
        if block.height == 2:
            assert mempool.add(tx).accepted  # lands in block 3
        return real_store(block, commit, state, result)

    chain.store_committed = crashing_store  # type: ignore[method-assign]
    with pytest.raises(BaseExceptionGroup) as info:
        await _run_until(driver, chain, 99)
    assert info.group_contains(_Crash)
    assert (chain.ledger.height, chain.height) == (3, 2)
    close_chain(chain)
    # block 3's records survive (its state was never saved); heights 1-2 were dropped
    heights = _wal_heights(tmp_path / "wal")
    assert 3 in heights and min(heights) == 3

    chain2 = open_chain(tmp_path / "chain", genesis)
    assert chain2.recover() == 0 and chain2.ledger.height == 3
    mempool2 = Mempool(FAST.mempool, chain2.ledger.check_tx)
    t2 = FakeTransport("me2")
    d2 = ConsensusDriver(config=FAST, chain=chain2, mempool=mempool2, signer=signer,
                         transport=t2, syncer=None, wal_dir=tmp_path / "wal",
                         max_gossip_bytes=1 << 20)
    d2.syncer = BlockSyncer(t2, lambda: chain2.height, d2.commit_fetched)
    try:
        await _run_until(d2, chain2, 5)
        assert chain2.block(3).txs == (tx,)  # the same block 3, re-decided from the WAL
        acct = chain2.ledger.account(accounts[1].address)
        assert acct is not None and acct.balance == 10**9 + 5  # executed exactly once
        top = chain2.height
        assert chain2.state.app_hash == chain2.applied_app_hash(top, chain2.block(top).id())
    finally:
        close_chain(chain2)


# --- create_empty_blocks ------------------------------------------------------------------
# These run on trio's autojump clock: the driver's timers (timeout_commit, the
# empty-block interval, the 2 s re-send timer, the 1 s sync poll) fire in virtual
# time, so "no block for a minute" is a minute of the driver's own timers firing,
# not a sleep. The WAL flush runs inline instead of in a worker thread: the
# clock jumps whenever every task waits, and a task waiting on a thread counts.

def _waiting_driver(tmp: Path, **consensus: object):
    config = with_changes(FAST, consensus=consensus)
    genesis, signers, accounts = make_genesis(1)
    chain = open_chain(tmp / "chain", genesis)
    mempool = Mempool(config.mempool, chain.ledger.check_tx)
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
    transport = FakeTransport("me")
    driver = ConsensusDriver(config=config, chain=chain, mempool=mempool, signer=signers[0],
                             transport=transport, syncer=None, wal_dir=tmp / "wal",
                             max_gossip_bytes=1 << 20)
    driver.syncer = BlockSyncer(transport, lambda: chain.height, driver.commit_fetched)

    async def write_inline(wal: FileWAL, records: list[bytes]) -> None:
        wal.append_many(records)

    driver._write_wal = write_inline  # type: ignore[method-assign]
    return driver, chain, mempool, accounts


async def _until(cond, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def test_without_empty_blocks_an_idle_validator_makes_no_blocks(
        tmp_path: Path, autojump_clock) -> None:
    from node.ledger import TransferBody, build_tx

    driver, chain, mempool, accounts = _waiting_driver(tmp_path, create_empty_blocks=False)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            # block 1 is made at once (the first height after a start never waits);
            # then the driver holds height 2 open, waiting for transactions
            await _until(lambda: chain.height == 1 and driver._txs_wanted == 2, 10)
            await trio.sleep(60)
            assert chain.height == 1
            tx = build_tx(accounts[0], chain.chain_id, 0,
                          TransferBody(to=accounts[1].address, amount=7))
            assert mempool.add(tx).accepted
            await _until(lambda: chain.height >= 2, 2)  # promptly, not after a timeout
            assert chain.block(2).txs == (tx,)
            # one more, empty block commits the app hash of block 2; then quiet again
            await _until(lambda: chain.height == 3 and driver._txs_wanted == 4, 2)
            assert chain.block(3).txs == ()
            assert chain.block(3).header.app_hash == chain.applied_app_hash(
                2, chain.block(2).id())
            await trio.sleep(60)
            assert chain.height == 3
            nursery.cancel_scope.cancel()
    finally:
        close_chain(chain)


async def test_future_nonce_txs_alone_do_not_end_the_wait(tmp_path: Path,
                                                           autojump_clock) -> None:
    from node.ledger import TransferBody, build_tx
    from node.txcheck import CachedCheck

    driver, chain, _mempool, accounts = _waiting_driver(tmp_path, create_empty_blocks=False)
    mempool = Mempool(FAST.mempool, CachedCheck(chain.ledger))  # reports account nonces
    chain.on_committed.clear()
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
    driver.mempool = driver.app.mempool = mempool
    mempool.on_ready = driver._note_ready
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            await _until(lambda: chain.height == 1 and driver._txs_wanted == 2, 10)
            gapped = build_tx(accounts[0], chain.chain_id, 5,
                              TransferBody(to=accounts[1].address, amount=1))
            assert mempool.add(gapped).accepted and mempool.ready == 0
            await trio.sleep(30)
            assert chain.height == 1
            nursery.cancel_scope.cancel()
    finally:
        close_chain(chain)


async def test_empty_block_interval_sets_the_idle_block_rate(tmp_path: Path,
                                                             autojump_clock) -> None:
    driver, chain, _mempool, _accounts = _waiting_driver(
        tmp_path, create_empty_blocks=True, create_empty_blocks_interval_ms=1000)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            await _until(lambda: chain.height == 1, 10)
            start = trio.current_time()
            await trio.sleep(60)
            made = chain.height - 1
            elapsed = trio.current_time() - start
            # one block per interval plus timeout_commit (20 ms) and the block's own work
            assert 0.9 * elapsed / 1.02 - 1 <= made <= elapsed / 1.02 + 1, (made, elapsed)
            assert all(chain.block(h).txs == () for h in range(2, chain.height + 1))
            nursery.cancel_scope.cancel()
    finally:
        close_chain(chain)


# --- direct links between validators --------------------------------------------------------

class _TwiceTransport(FakeTransport):
    """Delivers every direct message twice, as a re-send (or a second path) would."""

    async def send(self, peer: str, protocol: str, data: bytes) -> None:
        await super().send(peer, protocol, data)
        await super().send(peer, protocol, data)


async def test_four_validators_commit_over_direct_links_and_ignore_duplicates(
        tmp_path: Path) -> None:
    """Validators learn each other's peer ids by hello, send proposals and votes directly
    (nothing on gossip), and a message received twice reaches the WAL once."""
    from consensus.events import Persist

    genesis, signers, _accounts = make_genesis(4)
    network: dict[str, FakeTransport] = {}
    drivers, chains, persisted = [], [], []
    for i, signer in enumerate(signers):
        chain = open_chain(tmp_path / f"chain{i}", genesis)
        mempool = Mempool(FAST.mempool, chain.ledger.check_tx)
        transport = _TwiceTransport(f"peer{i}", network)
        d = ConsensusDriver(config=FAST, chain=chain, mempool=mempool, signer=signer,
                            transport=transport, syncer=None, wal_dir=tmp_path / f"wal{i}",
                            max_gossip_bytes=1 << 20)
        d.syncer = BlockSyncer(transport, lambda c=chain: c.height, d.commit_fetched)
        records: list[bytes] = []
        real_plan = d.planner.plan

        def spy(actions, real_plan=real_plan, records=records):
            records.extend(a.record for a in actions if isinstance(a, Persist))
            return real_plan(actions)

        d.planner.plan = spy  # type: ignore[method-assign]
        drivers.append(d)
        chains.append(chain)
        persisted.append(records)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for d in drivers:
                    nursery.start_soon(d.run)
                while min(c.height for c in chains) < 3:
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        assert len({c.block(3).id() for c in chains}) == 1
        for i, d in enumerate(drivers):
            assert sorted(d.links.targets()) == sorted(f"peer{j}" for j in range(4) if j != i)
            t = network[f"peer{i}"]
            assert t.published == []
            assert t.sent and {proto for _, proto, _ in t.sent} == {"/oml/consensus/1"}
            assert d.links.stats["received"] > 0
            # each message arrived twice; the core logged it once
            assert len(persisted[i]) == len(set(persisted[i])) > 0
    finally:
        for c in chains:
            close_chain(c)


async def test_hello_from_the_wrong_peer_or_a_stranger_is_refused(tmp_path: Path) -> None:
    from consensus.crypto import PrivateKey, Signer
    from consensus.hello import ValidatorHello
    from net import HandlerError

    driver, chain, *_ = _driver(tmp_path, n_validators=4)
    genesis_signers = make_genesis(4)[1]
    links = driver.links
    try:
        honest = ValidatorHello.create(genesis_signers[1], chain.chain_id, "peerB").encode()
        with pytest.raises(HandlerError):  # replayed by another peer
            await links._on_hello("peerC", honest)
        with pytest.raises(HandlerError):
            await links._on_hello("peerB", b"\x93junk")
        stranger = Signer(PrivateKey(b"\x44" * 32))
        answer = await links._on_hello("peerS", ValidatorHello.create(
            stranger, chain.chain_id, "peerS").encode())
        assert links.targets() == []  # a valid hello, but not a validator: not a target
        answer = await links._on_hello("peerB", honest)
        assert links.targets() == ["peerB"]
        mine = ValidatorHello.decode(answer)
        mine.verify(chain.chain_id, "me")
        assert mine.pub_key == driver.signer.public_key
        assert links.stats["bad_hellos"] == 2
    finally:
        close_chain(chain)
