"""Transport configuration: one frozen dataclass, validated when built.

``node/`` maps its ``[p2p]`` TOML section onto :class:`NetConfig`; ``net``
never reads files or globals. Every field is checked in ``__post_init__`` so
an invalid config cannot exist (and fails at start-up, not on first use).
Importing this module does not import libp2p (only the small ``multiaddr``
package, to check addresses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import multiaddr

from .errors import NetUsageError
from .identity import peer_id_from_seed


class NetConfigError(NetUsageError):
    """A :class:`NetConfig` field is missing, malformed or out of range."""


MsgIdMode = Literal["content", "peer_seqno"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConfig:
    """Everything the transport needs; defaults suit a 4-10 node testnet.

    Sizes are bytes, durations seconds, rates messages per second.
    """

    seed: bytes
    """32-byte Ed25519 seed of the node key; fixes the peer id."""
    listen_addr: str = "/ip4/127.0.0.1/tcp/0"
    """TCP multiaddr to listen on; port 0 picks a free port."""
    persistent_peers: tuple[str, ...] = ()
    """``/ip4/H/tcp/P/p2p/ID`` peers that the redial loop keeps connected."""
    redial_interval_s: float = 2.0
    """Pause between passes of the redial loop over disconnected persistent peers."""
    dial_timeout_s: float = 5.0
    """Deadline of one dial attempt."""
    stream_timeout_s: float = 10.0
    """Deadline of every stream open, read and write, and default request timeout."""
    handler_timeout_s: float = 10.0
    """Deadline of one inbound request handler call; past it the stream is reset."""
    max_msg_bytes: int = 4 * 1024 * 1024
    """Largest gossip message, request, response or direct message accepted or sent."""
    max_inbound_requests: int = 64
    """Inbound request/direct-message handlers running at once; more are refused as busy."""
    subscription_buffer: int = 256
    """Default per-subscription channel size; messages beyond it are dropped and counted."""
    publish_rate: float = 100.0
    """Sustained publishes per second (all topics); ``publish`` waits above it."""
    publish_burst: int = 16
    """Publishes allowed back to back before the rate applies (under the 32-RPC peer queue)."""
    gossip_degree: int = 6
    gossip_degree_low: int = 4
    gossip_degree_high: int = 12
    heartbeat_interval_s: int = 1
    """Gossipsub heartbeat (mesh maintenance, IHAVE gossip); library default is 120."""
    seen_ttl_s: int = 120
    """How long a message id is remembered for de-duplication."""
    msg_id: MsgIdMode = "content"
    """``content``: id = SHA-256 of the topics and the data, so equal bytes from two
    publishers on one topic are one message (and a verdict on one topic never
    carries over to another); ``peer_seqno``: the libp2p standard id (origin +
    seqno), needed to interoperate with go/js nodes that use it."""

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise NetConfigError("seed must be 32 bytes")
        _check_tcp_addr(self.listen_addr, "listen_addr")
        if not isinstance(self.persistent_peers, tuple):
            raise NetConfigError("persistent_peers must be a tuple of multiaddr strings")
        for addr in self.persistent_peers:
            parse_peer_addr(addr)
        for name in (
            "redial_interval_s",
            "dial_timeout_s",
            "stream_timeout_s",
            "handler_timeout_s",
            "publish_rate",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise NetConfigError(f"{name} must be a positive number, got {value!r}")
        for name in (
            "max_msg_bytes",
            "max_inbound_requests",
            "subscription_buffer",
            "publish_burst",
            "gossip_degree",
            "gossip_degree_low",
            "gossip_degree_high",
            "heartbeat_interval_s",
            "seen_ttl_s",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise NetConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.max_msg_bytes > 0xFFFFFFFF:
            raise NetConfigError("max_msg_bytes must fit the 32-bit frame length")
        if not self.gossip_degree_low <= self.gossip_degree <= self.gossip_degree_high:
            raise NetConfigError("need gossip_degree_low <= gossip_degree <= gossip_degree_high")
        if self.msg_id not in ("content", "peer_seqno"):
            raise NetConfigError(f"msg_id must be 'content' or 'peer_seqno', got {self.msg_id!r}")

    @property
    def peer_id(self) -> str:
        """Peer id this config's node will have (computed without libp2p)."""
        return peer_id_from_seed(self.seed)


def _check_tcp_addr(addr: str, what: str) -> multiaddr.Multiaddr:
    try:
        ma = multiaddr.Multiaddr(addr)
    except Exception as exc:  # the multiaddr package raises several unrelated types
        raise NetConfigError(f"{what}: not a multiaddr: {addr!r} ({exc})") from exc
    names = [p.name for p in ma.protocols()]
    if len(names) < 2 or names[0] not in ("ip4", "ip6", "dns", "dns4", "dns6") or names[1] != "tcp":
        raise NetConfigError(f"{what}: expected /ip4/HOST/tcp/PORT..., got {addr!r}")
    return ma


def parse_peer_addr(addr: str) -> tuple[str, str]:
    """Split ``/ip4/H/tcp/P/p2p/ID`` into (dial address without /p2p, peer id).

    Raises:
        NetConfigError: the address is not a TCP multiaddr ending in /p2p/ID.
    """
    if not isinstance(addr, str):
        raise NetConfigError(f"peer address must be a string, got {addr!r}")
    ma = _check_tcp_addr(addr, "persistent peer")
    names = [p.name for p in ma.protocols()]
    if names[-1] != "p2p" or names.count("p2p") != 1:
        raise NetConfigError(f"persistent peer must end in /p2p/PEER_ID: {addr!r}")
    peer = ma.value_for_protocol("p2p")
    base = addr[: addr.rindex("/p2p/")]
    return base, str(peer)
