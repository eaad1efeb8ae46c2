"""Our subclasses of py-libp2p's ``Pubsub`` and ``GossipSub``: two library traps mended.

1. **Oversize RPCs.** py-libp2p reads each inbound pubsub RPC with a size
   cap; on a frame over it, it resets the stream *and drops the peer from
   pubsub* while the connection stays up, so one oversize message from a
   foreign peer (js-libp2p does not split or drop it) silences that peer
   until it reconnects. :class:`TolerantPubsub` reads frames itself first:
   a frame over the cap is read to its end and thrown away, counted in
   ``oversize_rpcs`` and logged at debug level, and the next frame is read
   as usual. The library only ever sees frames within its cap, so its
   teardown path never runs. The cap is set high enough (above our own
   ``max_msg_bytes``) that an oversize *message* usually arrives intact and
   is dropped by our topic validator, counted against its topic.
2. **Adaptive gossip.** On by default in 0.8.1: with fewer mesh peers than
   ``degree`` the heartbeat stretches from 1 s to 30-60 s.
   :func:`make_router` turns it off; :class:`CountingGossipSub` counts
   heartbeats so a test (and the metrics) can see the interval hold.

Both override methods the library documents as its own entry points
(``continuously_read_stream``, ``mesh_heartbeat``); the tests in
``tests/net/test_net_gossip.py`` fail if a library upgrade stops calling them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._lib import PROTOCOL_ID_V11, GossipSub, INetStream, Pubsub

log = logging.getLogger(__name__)

DRAIN_CHUNK = 64 * 1024
MAX_VARINT_BYTES = 10


class TolerantPubsub(Pubsub):
    """``Pubsub`` that drops an oversize inbound RPC instead of the peer's session."""

    def __init__(self, *args: Any, max_inbound_rpc_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_inbound_rpc_size=max_inbound_rpc_size, **kwargs)
        self.oversize_rpcs = 0
        """Inbound RPC frames over the cap, read to their end and discarded."""

    def _count_oversize(self, peer: object, size: int) -> None:
        self.oversize_rpcs += 1
        log.debug("dropped a %d-byte pubsub RPC from %s (cap %d); session kept",
                  size, peer, self.max_inbound_rpc_size)

    async def continuously_read_stream(self, stream: INetStream) -> None:
        """The library's read loop, fed only frames within the cap."""
        filtered = _FrameFilter(stream, self.max_inbound_rpc_size, self._count_oversize)
        await super().continuously_read_stream(filtered)  # type: ignore[arg-type]


class _FrameFilter:
    """A read-only view of a pubsub stream that skips varint-framed frames over ``cap``.

    ``read`` returns bytes of whole accepted frames (length prefix included);
    every other attribute (``muxed_conn``, ``reset``, ``metric_send_channel``)
    is the wrapped stream's, so the library's error paths act on the real one.
    At EOF (the underlying read returns ``b""``) it returns ``b""`` as the
    stream would, and the library handles that as before.
    """

    def __init__(
        self, stream: INetStream, cap: int, on_oversize: Callable[[object, int], None]
    ) -> None:
        self._stream = stream
        self._cap = cap
        self._on_oversize = on_oversize
        self._buf = bytearray()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def read(self, n: int | None = None) -> bytes:
        while not self._buf:
            frame = await self._next_frame()
            if frame is None:
                return b""
            self._buf = frame
        take = len(self._buf) if n is None or n < 0 else n
        out = bytes(self._buf[:take])
        del self._buf[:take]
        return out

    async def _next_frame(self) -> bytearray | None:
        """The next frame within the cap (prefix + body), or None at EOF."""
        while True:
            prefix = bytearray()
            length = 0
            for shift in range(0, 7 * MAX_VARINT_BYTES, 7):
                b = await self._stream.read(1)
                if not b:
                    return None
                prefix += b
                length |= (b[0] & 0x7F) << shift
                if not b[0] & 0x80:
                    break
            else:
                return prefix  # malformed varint: let the library reject it
            if length <= self._cap:
                body = await self._read_exactly(length)
                return None if body is None else prefix + body
            if not await self._drain(length):
                return None
            self._on_oversize(self._stream.muxed_conn.peer_id, length)

    async def _read_exactly(self, length: int) -> bytearray | None:
        body = bytearray()
        while len(body) < length:
            chunk = await self._stream.read(length - len(body))
            if not chunk:
                return None
            body += chunk
        return body

    async def _drain(self, length: int) -> bool:
        left = length
        while left:
            chunk = await self._stream.read(min(left, DRAIN_CHUNK))
            if not chunk:
                return False
            left -= len(chunk)
        return True


class CountingGossipSub(GossipSub):
    """``GossipSub`` that counts its heartbeats (mesh upkeep, IHAVE gossip)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeats = 0

    def mesh_heartbeat(self) -> Any:
        self.heartbeats += 1
        return super().mesh_heartbeat()


def make_router(*, degree: int, degree_low: int, degree_high: int,
                heartbeat_interval: int) -> CountingGossipSub:
    """GossipSub v1.1 with the LIBP2P.md settings and adaptive gossip off.

    ``adaptive_gossip_enabled=False`` keeps the heartbeat at
    ``heartbeat_interval`` whatever the mesh size (with it on, 3 peers
    against degree 6 stretched 1 s to 60 s). Spam protection (10 msg/s per
    peer per topic, own publishes included) and IP-diversity eclipse
    protection are off as LIBP2P.md measured.
    """
    return CountingGossipSub(
        protocols=[PROTOCOL_ID_V11],
        degree=degree,
        degree_low=degree_low,
        degree_high=degree_high,
        heartbeat_interval=heartbeat_interval,
        adaptive_gossip_enabled=False,
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
    )
