"""The transport facade: one libp2p host with gossipsub and our protocols.

``open_transport`` builds the host with the settings LIBP2P.md measured
(deterministic Ed25519 identity from the seed, Noise + yamux over TCP, one
connection per peer, GossipSub v1.1 with degree 6/4/12, 1 s heartbeat, spam
and eclipse protection and adaptive gossip off, strict signing; our
subclasses in ``net/router.py``) and runs host, pubsub and gossipsub as
services for the lifetime of the ``async with`` block. The
:class:`Transport` it yields speaks only in peer-id strings and bytes, so
callers never see a libp2p type.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import multiaddr
import trio

from ._lib import (
    ConnectionConfig,
    IHost,
    PubsubMessage,
    background_trio_service,
    create_identity_from_seed,
    new_host,
)
from .config import NetConfig, parse_peer_addr
from .errors import ListenFailed, MessageTooLarge, NetError, NetUsageError, PeerUnreachable
from .gossip import Gossip, Validator, check_topic, inbound_rpc_cap
from .peers import PeerBook
from .ratelimit import TokenBucket
from .reqresp import Handler, ReqResp, check_protocol, parse_peer_id
from .router import TolerantPubsub, make_router
from .streams import FrameStream, StreamHandler, Streams
from .types import NetStats, PeerInfo


def _content_id(msg: PubsubMessage) -> bytes:
    """SHA-256 over the topics and the data, unambiguously framed.

    The topic is part of the id because py-libp2p keys its seen-cache and
    its cache of validator verdicts by id: bytes rejected on one topic must
    not count as already seen (or already rejected) on another.
    """
    h = hashlib.sha256(len(msg.topicIDs).to_bytes(4, "big"))
    for topic in msg.topicIDs:
        raw = topic.encode()
        h.update(len(raw).to_bytes(4, "big") + raw)
    h.update(msg.data)
    return h.digest()


def _peer_seqno_id(msg: PubsubMessage) -> bytes:
    """The libp2p standard id (go, js and py-libp2p): origin peer id + seqno.

    Needs no topic: the origin gives every publish a fresh seqno and signs
    the topic with it, so one id never names two topics.
    """
    return bytes(msg.from_id) + bytes(msg.seqno)


class Transport:
    """A running libp2p node, as the daemon sees it. Build with :func:`open_transport`."""

    def __init__(
        self, host: IHost, gossip: Gossip, reqresp: ReqResp, streams: Streams, peers: PeerBook
    ) -> None:
        self._host = host
        self._gossip = gossip
        self._reqresp = reqresp
        self._streams = streams
        self._peers = peers
        self.peer_id: str = host.get_id().to_base58()
        """Our base58 peer id (``12D3KooW...``), equal to ``peer_id_from_seed(seed)``."""

    @property
    def listen_addrs(self) -> list[str]:
        """Dialable addresses, each ending in ``/p2p/<our id>`` (real port if 0 was asked)."""
        out = []
        for addr in self._host.get_addrs():
            text = str(addr)
            out.append(text if "/p2p/" in text else f"{text}/p2p/{self.peer_id}")
        return out

    # ------------------------------------------------------------------ gossip

    def subscribe(
        self,
        topic: str,
        validator: Validator | None = None,
        *,
        buffer: int | None = None,
    ) -> trio.MemoryReceiveChannel[tuple[str, bytes]]:
        """Join ``topic`` and get its messages as ``(origin_peer_id, data)``.

        ``validator(origin, data)`` (plain or ``async def``; see
        :data:`net.gossip.Validator`) runs before a message is delivered or
        forwarded; ``False`` (or an exception) drops it for good. Messages
        over the gossip size cap are dropped before the validator. Our own
        publishes are not delivered back. ``buffer`` (default
        ``subscription_buffer``) bounds the channel; when it is full, new
        messages are dropped and counted in ``stats().topics[t].dropped_full``.
        Closing the returned channel leaves the topic. One subscription per
        topic.

        Raises:
            NetUsageError: bad topic name or buffer, or already subscribed.
        """
        return self._gossip.subscribe(topic, validator, buffer=buffer)

    async def publish(self, topic: str, data: bytes) -> None:
        """Gossip ``data`` on ``topic``, waiting first if over the publish rate.

        Publishing needs no subscription. Delivery is best effort: gossip does
        not recover messages lost while a peer was down.

        Raises:
            MessageTooLarge: ``data`` is over ``max_gossip_bytes``.
            NetUsageError: bad topic name or data type.
        """
        await self._gossip.publish(topic, data)

    @property
    def max_gossip_bytes(self) -> int:
        """Largest publishable message: ``max_msg_bytes`` capped by libp2p's 1 MiB RPC limit."""
        return self._gossip.max_msg_bytes

    def topic_peers(self, topic: str) -> list[str]:
        """Connected peers that have told us they subscribe to ``topic``."""
        return self._gossip.topic_peers(check_topic(topic))

    # --------------------------------------------------------- request/response

    def set_handler(self, protocol: str, handler: Handler) -> None:
        """Answer requests and direct messages on ``protocol`` (e.g. ``/oml/sync/1``).

        ``await handler(peer_id, data)`` returns the response bytes (ignored
        for direct messages) or raises :class:`HandlerError` to answer with
        a typed error. Calls run concurrently up to ``max_inbound_requests``
        and each is cancelled after ``handler_timeout_s``.

        Raises:
            NetUsageError: bad protocol id or handler, or ``protocol`` has a stream handler.
        """
        if self._streams.has_handler(protocol):
            raise NetUsageError(f"{protocol} already has a stream handler")
        self._reqresp.set_handler(protocol, handler)

    async def request(
        self, peer: str, protocol: str, data: bytes, *, timeout: float | None = None
    ) -> bytes:
        """Send one request and return the response.

        ``timeout`` (default ``stream_timeout_s``) bounds the whole exchange,
        dial included. Dials the peer if it is not connected but its address
        is known (persistent peers, or peers seen before).

        Raises:
            MessageTooLarge: ``data`` over ``max_msg_bytes`` (nothing sent).
            PeerUnreachable: no connection or stream, or it broke mid-exchange.
            RequestTimeout: no complete response in time (e.g. a frozen handler).
            RemoteError: the peer answered with an error (handler error,
                busy, unsupported protocol, ...).
            ProtocolViolation: the response was malformed or oversize.
        """
        return await self._reqresp.request(peer, protocol, data, timeout=timeout)

    async def send(self, peer: str, protocol: str, data: bytes) -> None:
        """Send a one-way message on a long-lived stream to ``peer``.

        Messages to one peer on one protocol arrive in order, at most once.
        Returns when the bytes are handed to the connection, not when the
        peer has handled them.

        Raises:
            MessageTooLarge, PeerUnreachable, RequestTimeout (write stalled
            past ``stream_timeout_s``), RemoteError (protocol unsupported).
        """
        await self._reqresp.send(peer, protocol, data)

    async def send_all(self, peers: list[str], protocol: str, data: bytes) -> dict[str, NetError]:
        """:meth:`send` to every peer in ``peers`` concurrently (e.g. a vote to all validators).

        One slow or dead peer does not delay the others. Returns the peers
        that failed, each with its error; an empty dict means every message
        was handed to its connection.

        Raises:
            MessageTooLarge, NetUsageError: before anything is sent.
        """
        check_protocol(protocol)
        for peer in peers:
            parse_peer_id(peer)
        if len(data) > self._reqresp.max_msg_bytes:
            raise MessageTooLarge(len(data), self._reqresp.max_msg_bytes)
        failed: dict[str, NetError] = {}

        async def one(peer: str) -> None:
            try:
                await self._reqresp.send(peer, protocol, data)
            except NetError as exc:
                failed[peer] = exc

        async with trio.open_nursery() as nursery:
            for peer in dict.fromkeys(peers):
                nursery.start_soon(one, peer)
        return failed

    # ------------------------------------------------------------ bulk streams

    def set_stream_handler(
        self,
        protocol: str,
        handler: StreamHandler,
        *,
        max_frame_bytes: int | None = None,
        max_streams: int = 16,
        max_streams_per_peer: int = 4,
    ) -> None:
        """Serve bulk streams on ``protocol`` (e.g. ``/oml/blob/1``).

        ``await handler(peer_id, stream)`` gets a :class:`FrameStream` and
        may send and receive as many frames as its protocol needs. When it
        returns, our side is closed; raising :class:`HandlerError` ends the
        stream with that typed error for the peer. At most ``max_streams``
        handlers run per protocol, ``max_streams_per_peer`` per peer; over
        either, a stream is answered ``ERR_BUSY`` at once. Received frames
        are capped at ``max_frame_bytes`` (default ``max_msg_bytes``).
        Replaces an earlier stream handler for ``protocol``.

        Raises:
            NetUsageError: bad arguments, or ``protocol`` has a request handler.
        """
        self._streams.set_handler(
            protocol,
            handler,
            max_frame_bytes=max_frame_bytes,
            max_streams=max_streams,
            max_streams_per_peer=max_streams_per_peer,
        )

    def open_stream(
        self,
        peer: str,
        protocol: str,
        *,
        max_frame_bytes: int | None = None,
        timeout: float | None = None,
    ) -> AbstractAsyncContextManager[FrameStream]:
        """``async with transport.open_stream(peer, protocol) as stream:`` a bulk stream.

        ``timeout`` (default ``stream_timeout_s``) bounds the open (dial
        included) and is the default deadline of each ``send``/``receive``;
        ``max_frame_bytes`` (default ``max_msg_bytes``) caps frames both
        ways. Leaving the block closes the stream if the peer had ended its
        side (we saw its EOF or ERROR frame) and resets it otherwise, so a
        peer still sending stops at once.

        Raises (on entry):
            NetUsageError: bad peer id, protocol, cap or timeout.
            PeerUnreachable: no connection or stream could be opened.
            RequestTimeout: not opened within ``timeout``.
            RemoteError: ``ERR_UNSUPPORTED`` (the peer does not serve ``protocol``).
        """
        return self._streams.open(peer, protocol, max_frame_bytes=max_frame_bytes, timeout=timeout)

    # ------------------------------------------------------------------- peers

    def connected_peers(self) -> list[PeerInfo]:
        """Live connections, one entry per peer, sorted by peer id."""
        return self._peers.connected_peers()

    def is_connected(self, peer: str) -> bool:
        """Whether a live connection to ``peer`` exists."""
        parse_peer_id(peer)
        return self._peers.is_connected(peer)

    async def connect(self, addr: str) -> str:
        """Dial ``/ip4/H/tcp/P/p2p/ID`` now (once; no redial) and return the peer id.

        Raises:
            NetUsageError: malformed address.
            PeerUnreachable: the dial failed or timed out.
        """
        base, peer = parse_peer_addr(addr)
        if not await self._peers.dial(peer, parse_peer_id(peer), multiaddr.Multiaddr(base)):
            raise PeerUnreachable(peer, f"dial to {base} failed")
        return peer

    async def add_peers(self, addrs: list[str], *, persistent: bool) -> dict[str, bool]:
        """Dial ``/ip4/H/tcp/P/p2p/ID`` peers learnt at run time (e.g. RPC ``dial_peers``).

        ``persistent`` adds them to the persistent peers that the redial loop
        keeps connected, replacing the address we had for the same peer id
        (a peer restarted on a new port is found where it is now). Waits at
        most ``dial_timeout_s``.

        Returns:
            Peer id -> connected when this returns; our own id is left out.

        Raises:
            NetUsageError: a malformed address (nothing was dialled or added).
        """
        return await self._peers.add_peers(list(addrs), persistent=persistent)

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> None:
        """Wait until at least ``count`` peers subscribe to ``topic`` (start-up, tests).

        Raises:
            trio.TooSlowError: not reached within ``timeout``.
        """
        check_topic(topic)
        with trio.fail_after(timeout):
            while len(self._gossip.topic_peers(topic)) < count:
                await trio.sleep(0.02)

    def stats(self) -> NetStats:
        """Counters for metrics: peers, per-topic and per-protocol traffic."""
        return NetStats(
            peers=len(self.connected_peers()),
            topics=self._gossip.stats(),
            protocols=self._reqresp.stats(),
            gossip_heartbeats=self._gossip.heartbeats,
            gossip_oversize_rpcs=self._gossip.oversize_rpcs,
        )


@asynccontextmanager
async def open_transport(config: NetConfig) -> AsyncIterator[Transport]:
    """Start a libp2p node for the duration of the ``async with`` block.

    Listening has started and the redial loop is running when the block is
    entered; on exit every task, stream and connection is closed.

    The host runs inside five nested nurseries, so any exception (ours, or
    one raised in the ``async with`` body) would come out wrapped five
    ExceptionGroups deep; tracebacks then hide the cause. A group that
    holds a single exception is unwrapped to that exception; real
    multi-error groups pass through unchanged.

    Raises:
        NetUsageError: ``config`` is not a :class:`NetConfig`.
        ListenFailed: the listen address cannot be bound (also an ``OSError``).
    """
    if not isinstance(config, NetConfig):
        raise NetUsageError("open_transport needs a NetConfig")
    try:
        async with _run_transport(config) as transport:
            yield transport
    except BaseExceptionGroup as group:
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


#: Longest wait for the swarm to close its connections and listeners on the way out.
CLOSE_TIMEOUT_S = 5.0


async def _close_network_first(host: IHost) -> None:
    """Close every connection and listener while pubsub still runs, then let it stop.

    Pubsub reads each peer's stream in a handler that the swarm runs, not
    pubsub, and hands every message to pubsub's task nursery. Stopped in
    the ``async with`` order (pubsub, then the host), there is a moment
    when that nursery is closed but pubsub still counts as running; a
    message arriving then raised ``RuntimeError: Nursery is closed to new
    arrivals`` out of the host, and a node stopped by SIGTERM exited 1.
    With the connections closed first, no such handler is left to run.
    """
    with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
        scope.shield = True  # we may be here because the caller was cancelled
        await host.get_network().close()


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def _run_transport(config: NetConfig) -> AsyncIterator[Transport]:
    listen = multiaddr.Multiaddr(config.listen_addr)
    host = new_host(
        key_pair=create_identity_from_seed(config.seed),
        muxer_preference="YAMUX",
        connection_config=ConnectionConfig(max_connections_per_peer=1),
        listen_addrs=[listen],
    )
    gossipsub = make_router(
        degree=config.gossip_degree,
        degree_low=config.gossip_degree_low,
        degree_high=config.gossip_degree_high,
        heartbeat_interval=config.heartbeat_interval_s,
    )
    pubsub = TolerantPubsub(
        host,
        gossipsub,
        strict_signing=True,
        seen_ttl=config.seen_ttl_s,
        msg_id_constructor=_content_id if config.msg_id == "content" else _peer_seqno_id,
        max_inbound_rpc_size=inbound_rpc_cap(config.max_msg_bytes),
    )
    # Before the host runs, so its notifee sees the very first connection.
    peers = PeerBook(
        host,
        config.persistent_peers,
        redial_interval=config.redial_interval_s,
        dial_timeout=config.dial_timeout_s,
    )
    async with (
        host.run([listen]),
        background_trio_service(pubsub),
        background_trio_service(gossipsub),
        trio.open_nursery() as nursery,
    ):
        if not host.get_addrs():
            raise ListenFailed(config.listen_addr)
        await pubsub.wait_until_ready()
        gossip = Gossip(
            pubsub,
            host.get_id(),
            nursery,
            max_msg_bytes=config.max_msg_bytes,
            default_buffer=config.subscription_buffer,
            pacer=TokenBucket(config.publish_rate, config.publish_burst),
        )
        reqresp = ReqResp(
            host,
            max_msg_bytes=config.max_msg_bytes,
            stream_timeout=config.stream_timeout_s,
            handler_timeout=config.handler_timeout_s,
            max_inbound=config.max_inbound_requests,
        )
        streams = Streams(
            host, reqresp, timeout=config.stream_timeout_s, max_frame_bytes=config.max_msg_bytes
        )
        nursery.start_soon(peers.redial_loop)
        try:
            yield Transport(host, gossip, reqresp, streams, peers)
        finally:
            nursery.cancel_scope.cancel()
            await _close_network_first(host)
