"""node.backend: the RPC NodeBackend over a real chain, ledger and mempool."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.backend import Backend
from node.config import Config
from node.mempool import Mempool, encode_batch, tx_hash
from node.rpc import BadArgument, NotFound
from node.txgossip import TX_TOPIC, TxGossip

from ._chainkit import Producer, close_chain, make_genesis, open_chain
from ._fakes import FakeTransport


@pytest.fixture
def setup(tmp_path: Path):
    genesis, signers, accounts = make_genesis()
    chain = open_chain(tmp_path / "c", genesis)
    producer = Producer(chain, signers, accounts)
    mempool = Mempool(Config().mempool, chain.ledger.check_tx)
    transport = FakeTransport("me")
    gossip = TxGossip(Config().mempool, mempool, transport, max_msg_bytes=1 << 20)
    backend = Backend(chain=chain, mempool=mempool, gossip=gossip, peer_id="me", moniker="m",
                      listen_addr="/ip4/127.0.0.1/tcp/1", pub_key=signers[0].public_key,
                      catching_up=lambda: False, peers=transport.connected_peers,
                      listeners=lambda: transport.listen_addrs)
    yield backend, producer, mempool, gossip, transport
    close_chain(chain)


def test_status_and_blocks(setup) -> None:
    backend, producer, *_ = setup
    with pytest.raises(NotFound):
        backend.block(None)
    tx = producer.transfer(0, producer.accounts[1].address, 9)
    block, _ = producer.produce((tx,))
    producer.produce()
    st = backend.status()
    assert st.sync_info.latest_block_height == 2
    assert st.sync_info.latest_app_hash == producer.chain.ledger.app_hash
    assert st.validator_info.voting_power == 10
    assert st.node_info.network == producer.chain.chain_id
    view = backend.block(1)
    assert view.hash == block.id() and view.txs == (tx,)
    assert view.header["app_hash"] == block.header.app_hash.hex()
    assert backend.block(None).height == 2
    with pytest.raises(BadArgument):
        backend.block(3)
    t = backend.tx(tx_hash(tx))
    assert (t.height, t.index, t.result.code, t.tx) == (1, 0, 0, tx)
    with pytest.raises(NotFound):
        backend.tx(b"\x00" * 32)
    assert len(backend.validators(None).validators) == 4
    assert backend.account(producer.accounts[1].address).balance == 10**9 + 9


async def test_broadcast_admits_valid_txs_and_gossips_them_in_batches(setup) -> None:
    backend, producer, mempool, gossip, transport = setup
    good = [producer.transfer(0, producer.accounts[1].address, i + 1) for i in range(3)]
    for tx in good:
        res = await backend.broadcast_tx(tx)
        assert res.code == 0 and res.hash == tx_hash(tx)
    bad = await backend.broadcast_tx(b"\x93junk")
    assert bad.code != 0 and bad.log
    dup = await backend.broadcast_tx(good[0])
    assert dup.code != 0
    assert len(mempool) == 3
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gossip.run_publisher)
            while not transport.published:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    topic, data = transport.published[0]
    assert topic == TX_TOPIC and data == encode_batch(good)  # one batch, not three messages


async def test_peer_batches_feed_the_mempool_and_garbage_is_dropped(setup) -> None:
    _backend, producer, mempool, gossip, _transport = setup
    txs = [producer.transfer(1, producer.accounts[0].address, 5 + i) for i in range(2)]
    assert not gossip.validate("peer", b"\xc1")
    assert not gossip.validate("peer", encode_batch([b"x"])[:-1])
    assert gossip.validate("peer", encode_batch(txs + [b"not a tx"]))
    assert gossip.on_batch("peer", encode_batch(txs + [b"not a tx"])) == 2
    assert gossip.on_batch("peer", b"garbage") == 0
    assert len(mempool) == 2 and gossip.stats["bad_batches"] == 3


def test_cached_check_matches_ledger_check_and_skips_reverification(setup) -> None:
    from node.txcheck import CachedCheck

    _backend, producer, *_ = setup
    ledger = producer.chain.ledger
    check = CachedCheck(ledger)
    tx0 = producer.transfer(0, producer.accounts[1].address, 3)
    tx1 = producer.transfer(0, producer.accounts[1].address, 4)
    assert check(tx0).ok and check(tx1).ok and check.misses == 2
    assert check(tx1).ok and check.hits == 1
    forged = tx0[:-1] + bytes([tx0[-1] ^ 1])
    assert check(forged).code == ledger.check_tx(forged).code != 0
    producer.produce((tx0,))
    # tx0's nonce is used now: the cached path must say so, like check_tx
    assert check(tx0).code == ledger.check_tx(tx0).code != 0
    assert check(tx1).ok and ledger.check_tx(tx1).ok


def test_order_for_block_sorts_each_sender_and_holds_back_gaps() -> None:
    from node.txcheck import order_for_block

    info = {b"a0": (b"A", 0), b"a1": (b"A", 1), b"a2": (b"A", 2), b"a4": (b"A", 4),
            b"b5": (b"B", 5), b"b6": (b"B", 6), b"c1": (b"C", 1)}
    arrived = [b"a2", b"b6", b"junk", b"a0", b"c1", b"a4", b"b5", b"a1"]
    nxt = {b"A": 0, b"B": 5, b"C": 0}
    out = order_for_block(arrived, info.get, nxt.__getitem__)
    # A first (first seen), gap-free from its next nonce; a4 waits for a3; C waits for c0
    assert out == [b"a0", b"a1", b"a2", b"b5", b"b6"]


async def test_unconfirmed_txs_and_genesis(setup) -> None:
    backend, producer, *_ = setup
    txs = [producer.transfer(0, producer.accounts[1].address, i + 1) for i in range(3)]
    for tx in txs:
        await backend.broadcast_tx(tx)
    view = backend.unconfirmed_txs(2)
    assert (view.total, view.total_bytes, view.txs) == (3, sum(map(len, txs)), tuple(txs[:2]))
    assert backend.unconfirmed_txs(0).txs == ()
    assert backend.genesis().to_json()["chain_id"] == producer.chain.chain_id


async def test_dial_peers_maps_bad_addresses_to_bad_argument(setup) -> None:
    from net import parse_peer_addr
    from node.rpc import NodeUnavailable

    backend, *_ = setup
    with pytest.raises(NodeUnavailable):  # built without a transport to dial with
        await backend.dial_peers(["/ip4/127.0.0.1/tcp/1/p2p/x"], True)
    calls = []

    async def add_peers(addrs: list[str], *, persistent: bool) -> dict[str, bool]:
        peers = [parse_peer_addr(a)[1] for a in addrs]  # what the transport checks first
        calls.append((addrs, persistent))
        return dict.fromkeys(peers, False)

    backend._add_peers = add_peers
    peer = "12D3KooWH3uVF6wv47WnArKHk5p6cvgCJEb74UTmxztmQDc298L3"
    addr = f"/ip4/127.0.0.1/tcp/1/p2p/{peer}"
    assert await backend.dial_peers([addr], True) == {peer: False}
    with pytest.raises(BadArgument, match="peers"):
        await backend.dial_peers(["/ip4/127.0.0.1/tcp/1"], True)
    assert calls == [([addr], True)]


def test_supply_accounts_for_every_unit_including_a_bond(setup) -> None:
    """RPC ``supply``: balances + locked amounts sum to the genesis supply after a bond moves
    units out of a balance (the breakdown is not just the balances)."""
    from node.ledger import build_tx
    from node.ledger.txs import RegisterRoleBody, Role

    backend, producer, *_ = setup
    start = backend.supply()
    assert start["balanced"] and start["genesis_supply"] == 2 * 10**9 == start["balances"]
    bond = build_tx(producer.accounts[1], producer.chain.chain_id, 0,
                    RegisterRoleBody(role=int(Role.PROVER), bond=5_000))
    producer.produce((producer.transfer(0, producer.accounts[1].address, 7), bond))
    after = backend.supply()
    assert after["height"] == 1 and after["balanced"] and after["total"] == 2 * 10**9
    assert after["role_bonds"] == 5_000 and after["balances"] == 2 * 10**9 - 5_000
