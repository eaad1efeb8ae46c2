"""node.consensus_links: hellos on connect, one outbox per validator, at-most-once sends."""

from __future__ import annotations

import trio

from consensus.hello import ValidatorHello
from net import PeerUnreachable
from node.consensus_links import CONSENSUS_PROTOCOL, OUTBOX_SIZE, ConsensusLinks

from ._chainkit import make_genesis
from ._fakes import FakeTransport

genesis, SIGNERS, _ = make_genesis(4)


def _valset():
    from node.chain import valset_from_genesis

    return valset_from_genesis(genesis)


VALSET = _valset()


class _Peer(FakeTransport):
    """A validator's transport whose peers' handlers we control."""


def _links(network: dict[str, FakeTransport], i: int, got: list[tuple[str, bytes]]
           ) -> ConsensusLinks:
    async def on_message(peer: str, data: bytes) -> None:
        got.append((peer, data))

    return ConsensusLinks(transport=_Peer(f"v{i}", network), chain_id=genesis.chain_id,
                          signer=SIGNERS[i], valset=lambda: VALSET, on_message=on_message)


async def _until(cond, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def test_validators_greet_each_other_and_a_full_node_is_left_out() -> None:
    network: dict[str, FakeTransport] = {}
    got: list[list[tuple[str, bytes]]] = [[], [], []]
    links = [_links(network, i, got[i]) for i in range(3)]
    FakeTransport("fullnode", network)  # connected, but speaks no consensus protocol
    async with trio.open_nursery() as nursery:
        for lk in links:
            nursery.start_soon(lk.run)
        await _until(lambda: all(len(lk.targets()) == 2 for lk in links))
        assert links[0].targets() == ["v1", "v2"]
        assert links[0].broadcast(b"vote") == 2
        await _until(lambda: got[1] and got[2])
        assert got[1] == [("v0", b"vote")] and got[2] == [("v0", b"vote")] and got[0] == []
        nursery.cancel_scope.cancel()
    # the full node was asked once, and nobody sends it consensus messages
    assert all("fullnode" not in lk.targets() for lk in links)


async def test_a_stuck_validator_costs_the_others_nothing_and_a_dead_one_drops_its_queue(
        ) -> None:
    network: dict[str, FakeTransport] = {}
    got: list[tuple[str, bytes]] = []
    me = _links(network, 0, got)
    stuck, dead, fine = FakeTransport("stuck", network), FakeTransport("dead", network), \
        FakeTransport("fine", network)
    received: list[bytes] = []

    async def never(_peer: str, _data: bytes) -> bytes:
        await trio.sleep_forever()
        return b""

    async def ok(_peer: str, data: bytes) -> bytes:
        received.append(data)
        return b""

    stuck.handlers[CONSENSUS_PROTOCOL] = never
    fine.handlers[CONSENSUS_PROTOCOL] = ok
    for t, signer in ((stuck, SIGNERS[1]), (dead, SIGNERS[2]), (fine, SIGNERS[3])):
        hello = ValidatorHello.create(signer, genesis.chain_id, t.peer_id)
        assert me.book.learn(hello, t.peer_id, [VALSET.address_at(i) for i in range(4)])
    del network["dead"]  # its sends fail: PeerUnreachable
    async with trio.open_nursery() as nursery:
        await nursery.start(me.run)
        n = OUTBOX_SIZE + 50
        with trio.fail_after(5):  # never blocks, whatever the peers do
            for k in range(n):
                me.broadcast(b"m%d" % k)
                await trio.sleep(0)  # the driver's loop yields between events too
        await _until(lambda: len(received) == n)
        assert received == [b"m%d" % k for k in range(n)]  # in order, all of them
        assert me.stats["dropped_full"] >= 49  # the stuck peer's outbox overflowed
        await _until(lambda: me.stats["send_errors"] >= 1)
        assert me.stats["dropped_failed"] + me.stats["send_errors"] >= 1
        nursery.cancel_scope.cancel()


def test_fake_send_to_an_unknown_peer_fails() -> None:
    async def main() -> None:
        t = FakeTransport("a", {})
        try:
            await t.send("nobody", CONSENSUS_PROTOCOL, b"x")
        except PeerUnreachable:
            return
        raise AssertionError("expected PeerUnreachable")

    trio.run(main)
