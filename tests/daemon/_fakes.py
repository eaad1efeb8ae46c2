"""In-memory stand-ins for ``net.Transport`` (test doubles of the boundary)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from net import PeerUnreachable


@dataclass(frozen=True)
class FakePeer:
    peer_id: str
    addrs: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/1",)
    direction: str = "outbound"
    connected_since: float = 0.0


class FakeTransport:
    """Records publishes; routes requests to other FakeTransports by peer id."""

    def __init__(self, peer_id: str, network: dict[str, FakeTransport] | None = None) -> None:
        self.peer_id = peer_id
        self.network = network if network is not None else {}
        self.network[peer_id] = self
        self.published: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, str, bytes]] = []
        self.handlers: dict[str, Callable[[str, bytes], Awaitable[bytes]]] = {}
        self.subscriptions: dict[str, trio.MemorySendChannel[tuple[str, bytes]]] = {}
        self.validators: dict[str, Callable[[str, bytes], bool] | None] = {}
        self.listen_addrs = [f"/ip4/127.0.0.1/tcp/1/p2p/{peer_id}"]
        self.max_gossip_bytes = 1 << 20

    def subscribe(self, topic: str, validator: Callable[[str, bytes], bool] | None = None,
                  *, buffer: int = 256) -> trio.MemoryReceiveChannel[tuple[str, bytes]]:
        send, recv = trio.open_memory_channel[tuple[str, bytes]](buffer)
        self.subscriptions[topic] = send
        self.validators[topic] = validator
        return recv

    async def publish(self, topic: str, data: bytes) -> None:
        self.published.append((topic, data))
        for peer, other in self.network.items():
            if peer == self.peer_id or topic not in other.subscriptions:
                continue
            check = other.validators[topic]
            if check is None or check(self.peer_id, data):
                other.subscriptions[topic].send_nowait((self.peer_id, data))

    def deliver(self, topic: str, origin: str, data: bytes) -> bool:
        """Inject a gossip message as if ``origin`` had published it."""
        check = self.validators[topic]
        if check is not None and not check(origin, data):
            return False
        self.subscriptions[topic].send_nowait((origin, data))
        return True

    def set_handler(self, protocol: str, handler: Callable[[str, bytes], Awaitable[bytes]]
                    ) -> None:
        self.handlers[protocol] = handler

    async def request(self, peer: str, protocol: str, data: bytes, *,
                      timeout: float | None = None) -> bytes:
        other = self.network.get(peer)
        if other is None or protocol not in other.handlers:
            raise PeerUnreachable(peer, "not in the fake network")
        return await other.handlers[protocol](self.peer_id, data)

    async def send(self, peer: str, protocol: str, data: bytes) -> None:
        """A one-way direct message: runs the peer's handler, like ``Transport.send``."""
        other = self.network.get(peer)
        if other is None or protocol not in other.handlers:
            raise PeerUnreachable(peer, "not in the fake network")
        self.sent.append((peer, protocol, data))
        await other.handlers[protocol](self.peer_id, data)

    def connected_peers(self) -> list[FakePeer]:
        return [FakePeer(p) for p in self.network if p != self.peer_id]
