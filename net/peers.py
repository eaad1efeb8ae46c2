"""Who we are connected to, and keeping persistent peers connected.

py-libp2p reconnects nothing on its own, and a failed dial puts the peer in
a 60-second negative cache that makes later dials fail at once (LIBP2P.md).
So a redial loop walks ``persistent_peers`` every ``redial_interval_s`` (and
at once when one of them disconnects or is added at run time), clears the peer from the negative
cache, and dials every missing one concurrently, each under the dial
deadline. A notifee records when and in which direction each connection
came up, for ``connected_peers``.
"""

from __future__ import annotations

import logging
import time

import multiaddr
import trio

from ._lib import ID, BaseLibp2pError, IHost, INetConn, INetStream, INetwork, INotifee, LibPeerInfo
from .config import parse_peer_addr
from .types import Direction, PeerInfo

log = logging.getLogger(__name__)


class _ConnWatcher(INotifee):
    """Records connection times; wakes the redial loop on a disconnect."""

    def __init__(self, book: PeerBook) -> None:
        self._book = book

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._book._on_connected(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._book._on_disconnected(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        pass


class PeerBook:
    """Connection bookkeeping and the persistent-peer redial loop."""

    def __init__(
        self,
        host: IHost,
        persistent_peers: tuple[str, ...],
        *,
        redial_interval: float,
        dial_timeout: float,
    ) -> None:
        self._host = host
        self._self_id = host.get_id()
        self._persistent: dict[str, tuple[ID, multiaddr.Multiaddr]] = {}
        self._wake = trio.Event()
        self.add_persistent(persistent_peers)
        self._redial_interval = redial_interval
        self._dial_timeout = dial_timeout
        self._since: dict[str, float] = {}
        self.dial_failures = 0
        host.get_network().register_notifee(_ConnWatcher(self))

    # ---------------------------------------------------------- bookkeeping

    def _on_connected(self, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        log.debug("connected %s (%s, conn %x)", peer, _direction(conn), id(conn))
        self._since.setdefault(peer, time.time())

    def _on_disconnected(self, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        log.debug("disconnected %s (%s, conn %x)", peer, _direction(conn), id(conn))
        if not self.is_connected(peer):
            self._since.pop(peer, None)
            if peer in self._persistent:
                self._wake.set()

    def is_connected(self, peer: str) -> bool:
        """Whether at least one open connection to ``peer`` exists."""
        try:
            conns = self._host.get_network().get_connections(ID.from_base58(peer))
        except ValueError:
            return False
        return any(_live(c) for c in conns)

    def connected_peers(self) -> list[PeerInfo]:
        """Snapshot of live connections, one entry per peer, sorted by id."""
        out = []
        for pid, conns in self._host.get_network().get_connections_map().items():
            live = [c for c in conns if _live(c)]
            if not live:
                continue
            peer = pid.to_base58()
            addrs: list[str] = []
            for c in live:
                try:
                    addrs.extend(str(a) for a in c.get_transport_addresses())
                except BaseLibp2pError:
                    pass
            out.append(
                PeerInfo(
                    peer_id=peer,
                    addrs=tuple(dict.fromkeys(addrs)),
                    direction=_direction(live[0]),
                    connected_since=self._since.get(peer, time.time()),
                    persistent=peer in self._persistent,
                )
            )
        return sorted(out, key=lambda p: p.peer_id)

    def add_persistent(self, addrs: tuple[str, ...] | list[str]) -> list[str]:
        """Keep the peers at ``addrs`` (``/ip4/H/tcp/P/p2p/ID``) connected from now on.

        An address replaces the one we had for the same peer id: a peer that
        restarts on another port (a testnet whose nodes bind port 0) is then
        dialled where it is now, not where it was. Our own id is skipped (a
        shared peer list may name us). Every address is checked before any
        is added, so a bad list changes nothing. Wakes the redial loop.

        Returns:
            The peer ids of ``addrs`` other than ours, in order.

        Raises:
            NetConfigError: an address is not a TCP multiaddr ending in /p2p/ID.
        """
        parsed = [parse_peer_addr(a) for a in addrs]
        added = []
        for base, peer in parsed:
            pid = ID.from_base58(peer)
            if pid != self._self_id:
                self._persistent[peer] = (pid, multiaddr.Multiaddr(base))
                added.append(peer)
        self._wake.set()
        return added

    # ------------------------------------------------------------- dialling

    async def dial(self, peer: str, pid: ID, addr: multiaddr.Multiaddr) -> bool:
        """One dial attempt under the dial deadline; True if connected after it."""
        network = self._host.get_network()
        unblock = getattr(network, "unblock_peer", None)
        if unblock is not None:
            unblock(pid)  # lift the 60 s negative cache left by an earlier failure
        # libp2p dials only the first TCP address it knows for a peer; after the
        # peer restarted on another port that is a dead one. Dial ``addr`` only.
        self._host.get_peerstore().clear_addrs(pid)
        with trio.move_on_after(self._dial_timeout):
            try:
                await self._host.connect(LibPeerInfo(pid, [addr]))
            except (BaseLibp2pError, OSError) as exc:
                self.dial_failures += 1
                log.debug("dial %s at %s failed: %s", peer, addr, str(exc).splitlines()[0:1])
        return self.is_connected(peer)

    async def add_peers(self, addrs: list[str], *, persistent: bool) -> dict[str, bool]:
        """Dial ``addrs`` now; with ``persistent``, also keep them connected from now on.

        Persistent peers are handed to the redial loop (one dialler per peer,
        so no two dials to one peer race); others are dialled once, here.
        Waits at most the dial deadline for the connections.

        Returns:
            Peer id -> whether it is connected when this returns (our own id left out).

        Raises:
            NetConfigError: an address is malformed (nothing was dialled or added).
        """
        parsed = [parse_peer_addr(a) for a in addrs]
        if persistent:
            peers = self.add_persistent(addrs)
            with trio.move_on_after(self._dial_timeout):
                while not all(self.is_connected(p) for p in peers):
                    await trio.sleep(0.05)
        else:
            targets = {peer: multiaddr.Multiaddr(base) for base, peer in parsed
                       if ID.from_base58(peer) != self._self_id}
            peers = list(targets)
            async with trio.open_nursery() as nursery:
                for peer, addr in targets.items():
                    if not self.is_connected(peer):
                        nursery.start_soon(self.dial, peer, ID.from_base58(peer), addr)
        return {p: self.is_connected(p) for p in peers}

    async def redial_loop(self) -> None:
        """Forever: dial every disconnected persistent peer, then wait.

        With no persistent peers it sleeps until :meth:`add_persistent` wakes it.
        """
        while True:
            # A fresh event first, so a disconnect during the dials below
            # still cuts the following wait short.
            self._wake = trio.Event()
            missing = [
                (p, pid, a) for p, (pid, a) in self._persistent.items() if not self.is_connected(p)
            ]
            if missing:
                async with trio.open_nursery() as nursery:
                    for peer, pid, addr in missing:
                        nursery.start_soon(self.dial, peer, pid, addr)
            if not self._persistent:
                await self._wake.wait()
                continue
            with trio.move_on_after(self._redial_interval):
                await self._wake.wait()


def _live(conn: INetConn) -> bool:
    """Open at both the swarm and the muxer level (as the swarm itself checks)."""
    if getattr(conn, "is_closed", False):
        return False
    return not getattr(getattr(conn, "muxed_conn", None), "is_closed", False)


def _direction(conn: INetConn) -> Direction:
    value = getattr(conn, "direction", None)
    name = getattr(value, "name", str(value)).lower()
    if "inbound" in name:
        return "inbound"
    if "outbound" in name:
        return "outbound"
    return "unknown"
