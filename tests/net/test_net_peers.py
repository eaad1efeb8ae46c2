"""Identity, connection info and the persistent-peer redial loop."""

from __future__ import annotations

import os

import pytest
import trio
from net_helpers import bounded, closed_port, config, hosts, link, seed, wait_until

from net import ListenFailed, NetUsageError, PeerUnreachable, open_transport, peer_id_from_seed


def test_peer_id_from_seed_matches_libp2p() -> None:
    from libp2p.identity_utils import create_identity_from_seed
    from libp2p.peer.id import ID

    for _ in range(25):
        s = os.urandom(32)
        assert (
            peer_id_from_seed(s)
            == ID.from_pubkey(create_identity_from_seed(s).public_key).to_base58()
        )


@bounded(30)
async def test_transport_identity_and_peer_info() -> None:
    async with hosts(config("pa"), config("pb")) as (a, b):
        assert a.peer_id == peer_id_from_seed(seed("pa"))
        assert all(
            addr.endswith(f"/p2p/{a.peer_id}") and "/tcp/0/" not in addr for addr in a.listen_addrs
        )
        assert a.connected_peers() == []
        await link(b, a)
        (info_b,) = a.connected_peers()
        (info_a,) = b.connected_peers()
        assert (
            info_b.peer_id == b.peer_id and info_b.direction == "inbound" and not info_b.persistent
        )
        assert (
            info_a.direction == "outbound"
            and info_a.addrs[0] == a.listen_addrs[0].split("/p2p/")[0]
        )
        assert info_a.connected_since > 0


@bounded(30)
async def test_redial_through_negative_cache_and_restart() -> None:
    """A persistent peer that is down, then up, then restarted on a new port.

    Every host binds port 0; a restarted B gets a new port and A learns it
    through ``add_peers`` (which replaces the address it had for B's id),
    as the testnet launcher does after a restart.
    """
    b_cfg = config("rb")

    async def answer(peer: str, data: bytes) -> bytes:
        return b"pong:" + data

    with closed_port() as port:  # bound, never listening: a dial there is refused
        b_down = f"/ip4/127.0.0.1/tcp/{port}/p2p/{b_cfg.peer_id}"
        async with open_transport(config("ra", persistent_peers=(b_down,))) as a:
            # B is down: the first dials fail and put B in libp2p's negative cache.
            await wait_until(lambda: a._peers.dial_failures >= 1, what="a failed dial")
            with trio.fail_after(5):
                try:
                    await a.request(b_cfg.peer_id, "/oml/test/ping/1", b"x")
                    raise AssertionError("request to a down peer succeeded")
                except PeerUnreachable:
                    pass
            for round_ in range(2):  # first start, then a restart with the same seed
                async with open_transport(b_cfg) as b:
                    b.set_handler("/oml/test/ping/1", answer)
                    assert b.peer_id == b_cfg.peer_id
                    (addr,) = b.listen_addrs
                    assert await a.add_peers([addr], persistent=True) == {b.peer_id: True}
                    await wait_until(
                        lambda: a.is_connected(b.peer_id), timeout=10, what=f"redial {round_}"
                    )
                    (info,) = a.connected_peers()
                    assert info.persistent and info.direction == "outbound"
                    assert (
                        await a.request(b.peer_id, "/oml/test/ping/1", b"%d" % round_)
                        == b"pong:%d" % round_
                    )
                    await a.send(b.peer_id, "/oml/test/ping/1", b"direct")  # caches a stream
                await wait_until(lambda: not a.is_connected(b_cfg.peer_id), what="disconnect")
            assert list(a._peers._persistent) == [b_cfg.peer_id]  # replaced, not added
            # The cached direct stream died with the old B; after a restart, send opens a new one.
            async with open_transport(b_cfg) as b:
                got: list[bytes] = []

                async def sink(peer: str, data: bytes) -> bytes:
                    got.append(data)
                    return b""

                b.set_handler("/oml/test/ping/1", sink)
                await a.add_peers(b.listen_addrs, persistent=True)
                await wait_until(lambda: a.is_connected(b.peer_id), timeout=10,
                                 what="third connect")
                await a.send(b.peer_id, "/oml/test/ping/1", b"after restart")
                await wait_until(lambda: got == [b"after restart"], what="direct after restart")


@bounded(30)
async def test_add_peers_without_redial_and_bad_addresses_change_nothing() -> None:
    async with hosts(config("da"), config("db"), config("dc")) as (a, b, c):
        # not persistent: dialled once, connected, but the redial loop does not own it
        assert await a.add_peers([b.listen_addrs[0]], persistent=False) == {b.peer_id: True}
        (info,) = a.connected_peers()
        assert info.peer_id == b.peer_id and not info.persistent
        # a malformed address anywhere in the list: an error, and nothing added or dialled
        with pytest.raises(NetUsageError):
            await a.add_peers([c.listen_addrs[0], "/ip4/127.0.0.1/tcp/1"], persistent=True)
        assert a._peers._persistent == {} and not a.is_connected(c.peer_id)
        # our own address is left out of the answer (and never dialled)
        assert await a.add_peers([a.listen_addrs[0], c.listen_addrs[0]],
                                 persistent=True) == {c.peer_id: True}
        assert list(a._peers._persistent) == [c.peer_id]


@bounded(30)
async def test_persistent_list_may_name_ourselves() -> None:
    cfg = config("self")
    me = f"/ip4/127.0.0.1/tcp/4001/p2p/{cfg.peer_id}"  # never dialled, never bound
    async with hosts(config("self", persistent_peers=(me,))) as (a,):
        assert a._peers._persistent == {}  # filtered out: the redial loop never dials itself
        assert a._peers.dial_failures == 0 and a.connected_peers() == []


@bounded(30)
async def test_port_in_use_raises_listen_failed_and_errors_unwrap() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenFailed) as exc:
            async with open_transport(config("busy", listen_addr=f"/ip4/127.0.0.1/tcp/{port}")):
                raise AssertionError("a transport without a listener must not open")
        assert isinstance(exc.value, OSError)
    # An error in the body comes out as itself, not five ExceptionGroups deep.
    with pytest.raises(KeyError, match="from the body"):
        async with open_transport(config("body")):
            raise KeyError("from the body")
