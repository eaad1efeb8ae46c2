"""Plain values the transport hands out: peer info and statistics.

They carry peer ids as base58 strings and addresses as multiaddr strings,
never libp2p objects, so ``node/`` and ``consensus/`` stay free of libp2p
types (STYLE.md point 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["inbound", "outbound", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerInfo:
    """A currently connected peer."""

    peer_id: str
    addrs: tuple[str, ...]
    """Transport addresses of the live connection(s)."""
    direction: Direction
    """Who dialled: ``outbound`` if we did."""
    connected_since: float
    """Wall-clock UNIX time (s) when this connection was established (for display)."""
    persistent: bool
    """Whether the peer is in ``persistent_peers`` (kept connected by redial)."""


@dataclass(slots=True)
class TopicStats:
    """Per-topic gossip counters (monotonic; read a snapshot via ``Transport.stats``).

    Every message from another peer that reaches our validator for the first
    time ends in exactly one of: ``delivered``, ``dropped_full`` (together:
    accepted) or one of the rejection reasons ``invalid``, ``errors``,
    ``timeouts``, ``oversize`` (together: :attr:`rejected`). Duplicates and
    messages with a bad libp2p signature are dropped by py-libp2p before
    that point and are not counted here.
    """

    published: int = 0
    """Messages we published."""
    delivered: int = 0
    """Messages from other peers put on our subscription channel."""
    dropped_full: int = 0
    """Valid messages dropped because the subscription channel was full."""
    invalid: int = 0
    """Messages our validator rejected (not delivered, not forwarded)."""
    errors: int = 0
    """Messages rejected because our validator raised (logged with the traceback)."""
    timeouts: int = 0
    """Messages rejected because an ``async`` validator ran past py-libp2p's 5 s limit."""
    oversize: int = 0
    """Messages over ``max_gossip_bytes``, dropped before the validator runs."""

    @property
    def rejected(self) -> int:
        """All rejections, whatever the reason."""
        return self.invalid + self.errors + self.timeouts + self.oversize

    def results(self) -> dict[str, int]:
        """Counters by outcome, keyed by the ``result`` label of the gossip metric."""
        return {
            "published": self.published,
            "delivered": self.delivered,
            "dropped_full": self.dropped_full,
            "invalid": self.invalid,
            "error": self.errors,
            "timeout": self.timeouts,
            "oversize": self.oversize,
        }


@dataclass(slots=True)
class ProtocolStats:
    """Per-protocol request/response, direct-message and bulk-stream counters."""

    requests_out: int = 0
    requests_in: int = 0
    direct_out: int = 0
    direct_in: int = 0
    errors_out: int = 0
    """Outbound requests/sends that ended in a typed error."""
    errors_in: int = 0
    """Inbound exchanges answered with an error or aborted (busy, timeout, handler failure)."""
    violations: int = 0
    """Inbound streams reset because the peer broke the framing."""
    streams_out: int = 0
    """Bulk streams we opened (:meth:`net.Transport.open_stream`)."""
    streams_in: int = 0
    """Bulk streams peers opened to us (busy ones included)."""
    stream_bytes_out: int = 0
    """Payload bytes sent in DATA frames on bulk streams."""
    stream_bytes_in: int = 0
    """Payload bytes received in DATA frames on bulk streams."""


@dataclass(frozen=True, slots=True)
class NetStats:
    """A snapshot for metrics: peer count and per-topic/per-protocol counters."""

    peers: int
    topics: dict[str, TopicStats] = field(default_factory=dict)
    protocols: dict[str, ProtocolStats] = field(default_factory=dict)
    gossip_heartbeats: int = 0
    """Gossipsub heartbeats run so far (one per ``heartbeat_interval_s`` when healthy)."""
    gossip_oversize_rpcs: int = 0
    """Inbound pubsub RPC frames over the inbound cap, discarded whole (peer kept)."""
