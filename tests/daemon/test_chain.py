"""node.chain: the one commit path, verification of fetched blocks, crash recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.block import Commit
from consensus.catchup import decode_pair
from consensus.crypto import PrivateKey, Signer
from consensus.state import ChainState
from consensus.vote import Vote, VoteType
from node.chain import BlockRejected, ChainInvariantError
from node.mempool import tx_hash
from node.sync import decode_blocks, encode_blocks_request, serve_request

from ._chainkit import Producer, close_chain, make_genesis, open_chain, sign_commit


@pytest.fixture
def producer(tmp_path: Path) -> Producer:
    genesis, signers, accounts = make_genesis()
    chain = open_chain(tmp_path / "producer", genesis)
    p = Producer(chain, signers, accounts)
    yield p
    close_chain(chain)


def test_follower_fetching_blocks_reaches_same_state(producer: Producer, tmp_path: Path) -> None:
    dest = producer.accounts[1].address
    for i in range(5):
        producer.produce((producer.transfer(0, dest, 100 + i),))
    producer.produce()
    assert producer.chain.height == 6
    follower = open_chain(tmp_path / "follower", producer.chain.genesis)
    try:
        raw = serve_request(producer.chain.blocks, encode_blocks_request(1, 100))
        pairs = decode_blocks(raw, 1, 100, 1 << 22)
        assert len(pairs) == 6
        for h, (b, c) in enumerate(pairs, start=1):
            block, commit = decode_pair(b, c, h)
            follower.verify_fetched(block, commit)
            follower.commit_synced(block, commit)
        assert follower.height == 6
        assert follower.ledger.app_hash == producer.chain.ledger.app_hash
        assert follower.state == producer.chain.state
        acct = follower.ledger.account(dest)
        assert acct is not None and acct.balance == 10**9 + sum(100 + i for i in range(5))
        first_tx = producer.chain.block(1).txs[0]
        found = follower.indexed_tx(tx_hash(first_tx))
        assert found is not None and (found.height, found.index, found.code) == (1, 0, 0)
    finally:
        close_chain(follower)


def test_failed_tx_is_indexed_with_its_code(producer: Producer) -> None:
    bad = producer.transfer(0, producer.accounts[1].address, 10**12)  # more than the balance
    producer.produce((bad,))
    found = producer.chain.indexed_tx(tx_hash(bad))
    assert found is not None and found.code != 0 and found.log


def test_fetched_block_with_wrong_app_hash_is_rejected(producer: Producer) -> None:
    producer.produce()
    block = producer.make_block(app_hash=b"\x01" * 32)
    commit = sign_commit(producer.chain, producer.signers, block.height, block.id())
    with pytest.raises(BlockRejected, match="app hash"):
        producer.chain.verify_fetched(block, commit)
    assert producer.chain.height == 1


def test_fetched_block_with_too_little_power_is_rejected(producer: Producer) -> None:
    block = producer.make_block()
    weak = sign_commit(producer.chain, producer.signers, block.height, block.id(), who=[0, 1])
    with pytest.raises(BlockRejected, match="power"):
        producer.chain.verify_fetched(block, weak)


def test_fetched_block_signed_by_strangers_is_rejected(producer: Producer) -> None:
    """Every slot holds a valid precommit signature, but by keys outside the set."""
    strangers = [Signer(PrivateKey(bytes([5, i + 1]) * 16)) for i in range(4)]
    block = producer.make_block()
    forged = Commit(height=block.height, round=0, block_id=block.id(), signatures=tuple(
        Vote.create(strangers[i], producer.chain.chain_id, type=VoteType.PRECOMMIT,
                    height=block.height, round=0, block_id=block.id(),
                    validator_index=i).signature for i in range(4)))
    with pytest.raises(BlockRejected, match="signature"):
        producer.chain.verify_fetched(block, forged)
    assert producer.chain.height == 0


def test_block_not_extending_our_chain_is_rejected(producer: Producer) -> None:
    block, commit = producer.produce()
    with pytest.raises(BlockRejected):
        producer.chain.verify_fetched(block, commit)  # height 1 again


def test_recover_reexecutes_a_stored_but_unapplied_block(producer: Producer,
                                                         tmp_path: Path) -> None:
    """Crash between storing a synced block and executing it."""
    genesis = producer.chain.genesis
    producer.produce((producer.transfer(0, producer.accounts[1].address, 5),))
    block = producer.make_block((producer.transfer(0, producer.accounts[1].address, 6),))
    commit = sign_commit(producer.chain, producer.signers, block.height, block.id())
    producer.chain._store(block, commit)  # the crash comes before _execute
    close_chain(producer.chain)
    chain = open_chain(tmp_path / "producer", genesis)
    producer.chain = chain
    assert chain.ledger.height == 1 and chain.height == 2
    assert chain.recover() == 1
    assert chain.ledger.height == 2
    assert chain.state.height == 2 and chain.state.app_hash == chain.ledger.app_hash


def test_recover_tolerates_ledger_one_block_ahead(producer: Producer, tmp_path: Path) -> None:
    """Crash after the core applied a decided block but before it was stored."""
    genesis = producer.chain.genesis
    producer.produce()
    block = producer.make_block((producer.transfer(0, producer.accounts[1].address, 7),))
    commit = sign_commit(producer.chain, producer.signers, block.height, block.id())
    h = block.header
    producer.chain.ledger.apply_block(block.height, h.time_ms, h.proposer_address,
                                      list(block.txs))
    close_chain(producer.chain)
    chain = open_chain(tmp_path / "producer", genesis)
    producer.chain = chain
    assert chain.recover() == 0
    assert chain.ledger.height == 2 and chain.height == 1
    # the block arrives again (WAL replay or sync): stored, not executed twice
    chain.verify_fetched(block, commit)
    chain.commit_synced(block, commit)
    assert chain.height == 2 and chain.ledger.height == 2
    acct = chain.ledger.account(producer.accounts[1].address)
    assert acct is not None and acct.balance == 10**9 + 7


def test_ledger_two_blocks_ahead_is_an_invariant_error(producer: Producer, tmp_path: Path) -> None:
    genesis = producer.chain.genesis
    for height in (1, 2):
        producer.chain.ledger.apply_block(height, 2_000_000 + height, b"\x00" * 20, [])
    close_chain(producer.chain)
    chain = open_chain(tmp_path / "producer", genesis)
    producer.chain = chain
    with pytest.raises(ChainInvariantError):
        chain.recover()


def _decided(producer: Producer, txs: tuple[bytes, ...] = ()):
    """Build the next block as consensus would decide it (ledger executes it, not stored)."""
    st = producer.chain.state
    block = producer.make_block(txs)
    commit = sign_commit(producer.chain, producer.signers, block.height, block.id())
    app_hash, result = producer.chain.execute(block)
    return block, commit, st.next(block, commit, app_hash), result


def test_two_heights_decided_in_one_batch_are_stored_in_order(producer: Producer) -> None:
    """One core input may decide h and h+1: both execute before either is stored."""
    b1, c1, s1, r1 = _decided(producer)
    producer.chain.state = s1  # what the core builds h+1 on
    b2, c2, s2, r2 = _decided(producer, (producer.transfer(0, producer.accounts[1].address, 3),))
    producer.chain.state = ChainState.genesis(producer.chain.chain_id,
                                              producer.chain.genesis.genesis_time_ms,
                                              producer.chain.valset, producer.chain.ledger.app_hash)
    producer.chain.store_committed(b1, c1, s1, r1)
    producer.chain.store_committed(b2, c2, s2, r2)
    assert producer.chain.height == 2 and producer.chain.state == s2
    assert producer.chain.indexed_tx(tx_hash(b2.txs[0])).code == 0


def test_restart_with_ledger_two_blocks_ahead_recovers_from_records(producer: Producer,
                                                                    tmp_path: Path) -> None:
    genesis = producer.chain.genesis
    producer.produce()
    b2, c2, s2, _ = _decided(producer, (producer.transfer(0, producer.accounts[1].address, 4),))
    producer.chain.state = s2
    b3, c3, s3, _ = _decided(producer)
    close_chain(producer.chain)  # crash: blocks 2 and 3 executed, neither stored
    chain = open_chain(tmp_path / "producer", genesis)
    producer.chain = chain
    assert (chain.ledger.height, chain.height) == (3, 1)
    assert chain.recover() == 0
    # the same blocks come back (WAL replay or sync): stored with the recorded app hashes
    for block, commit in ((b2, c2), (b3, c3)):
        chain.verify_fetched(block, commit)
        chain.commit_synced(block, commit)
    assert chain.state == s3 and chain.state.app_hash == chain.ledger.app_hash
    # a different block for an executed height is refused loudly
    other = producer.make_block()
    with pytest.raises(ChainInvariantError):
        chain.applied_app_hash(3, other.id())
