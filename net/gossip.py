"""Gossipsub topics: validated delivery, paced publishing, per-topic stats.

One pump task per subscription moves messages from libp2p's 32-slot channel
into a bounded trio channel of our own the moment they arrive, so libp2p
never drops for lack of a reader; if *our* channel is full (the consumer is
behind) the message is dropped and counted in ``dropped_full``. Validators
run inside gossipsub, before a message is marked seen or forwarded, so a
rejected message is neither delivered nor relayed; every rejection is
counted on its topic by reason (invalid, error, timeout, oversize) and
logged at debug level.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable

import trio

from ._lib import ID, PubsubMessage
from .errors import MessageTooLarge, NetUsageError
from .ratelimit import TokenBucket
from .router import CountingGossipSub, TolerantPubsub
from .types import TopicStats

log = logging.getLogger(__name__)

Validator = Callable[[str, bytes], bool] | Callable[[str, bytes], Awaitable[bool]]
"""``validator(origin_peer_id, data) -> accept``, plain or ``async def``. A plain
one runs inline and must be quick. An ``async def`` one runs in its own task per
message (at most 10 at once, cancelled and counted as a rejection after 5 s,
by py-libp2p), so it may e.g. check signatures in a worker thread. Either kind
should judge the message itself (syntax, signatures), not transient state: a
verdict is cached by message id for minutes."""

GOSSIP_WIRE_CAP = 1024 * 1024 - 16 * 1024
"""py-libp2p sends and accepts pubsub RPCs of at most 1 MiB (as go-libp2p
does) and silently drops larger ones; 16 KiB stay free for the signature,
key, topic, ids and protobuf framing."""

RPC_OVERHEAD = 64 * 1024
"""Room above the largest message for signature, key, ids and other messages
or control entries bundled into the same inbound RPC."""


def inbound_rpc_cap(max_msg_bytes: int) -> int:
    """Largest inbound pubsub RPC frame that is parsed; larger ones are discarded whole.

    Above our own message cap (and above the 1 MiB that py-libp2p and
    go-libp2p send), so that a foreign peer's oversize message is usually
    parsed and then dropped by the topic validator, counted against its
    topic as ``oversize``, rather than skipped as an anonymous frame.
    """
    return max(max_msg_bytes, GOSSIP_WIRE_CAP) + RPC_OVERHEAD

MAX_TOPIC_LEN = 256


def check_topic(topic: object) -> str:
    """Return ``topic`` if it is a usable topic name.

    Raises:
        NetUsageError: not a non-empty printable string of at most 256 characters.
    """
    if (
        not isinstance(topic, str)
        or not topic
        or len(topic) > MAX_TOPIC_LEN
        or not topic.isprintable()
    ):
        raise NetUsageError(f"bad topic name {topic!r}")
    return topic


class Gossip:
    """Our side of gossipsub: subscriptions, publishing and counters."""

    def __init__(
        self,
        pubsub: TolerantPubsub,
        my_id: ID,
        nursery: trio.Nursery,
        *,
        max_msg_bytes: int,
        default_buffer: int,
        pacer: TokenBucket,
    ) -> None:
        self._pubsub = pubsub
        self._my_id_bytes = my_id.to_bytes()
        self._nursery = nursery
        self.max_msg_bytes = min(max_msg_bytes, GOSSIP_WIRE_CAP)
        self._default_buffer = default_buffer
        self._pacer = pacer
        self._stats: dict[str, TopicStats] = {}
        self._subscribed: set[str] = set()

    def _topic_stats(self, topic: str) -> TopicStats:
        return self._stats.setdefault(topic, TopicStats())

    @property
    def heartbeats(self) -> int:
        """Gossipsub heartbeats run so far."""
        router = self._pubsub.router
        return router.heartbeats if isinstance(router, CountingGossipSub) else 0

    @property
    def oversize_rpcs(self) -> int:
        """Inbound RPC frames over the inbound cap, discarded without dropping the peer."""
        return self._pubsub.oversize_rpcs

    def subscribe(
        self,
        topic: str,
        validator: Validator | None = None,
        *,
        buffer: int | None = None,
    ) -> trio.MemoryReceiveChannel[tuple[str, bytes]]:
        """Join ``topic``; see :meth:`net.Transport.subscribe`."""
        check_topic(topic)
        if topic in self._subscribed:
            raise NetUsageError(f"already subscribed to {topic!r}")
        size = self._default_buffer if buffer is None else buffer
        if not isinstance(size, int) or size < 1:
            raise NetUsageError(f"buffer must be a positive int, got {size!r}")
        if validator is not None and not callable(validator):
            raise NetUsageError("validator must be callable")
        stats = self._topic_stats(topic)
        if validator is not None and inspect.iscoroutinefunction(validator):
            self._pubsub.set_topic_validator(
                topic, self._make_async_validator(topic, validator, stats), True
            )
        else:
            self._pubsub.set_topic_validator(
                topic, self._make_validator(topic, validator, stats), False
            )
        send, receive = trio.open_memory_channel[tuple[str, bytes]](size)
        self._subscribed.add(topic)
        self._nursery.start_soon(self._pump, topic, send, stats)
        return receive

    def _make_validator(
        self, topic: str, validator: Validator | None, stats: TopicStats
    ) -> Callable[[ID, PubsubMessage], bool]:
        limit = self.max_msg_bytes

        def validate(_forwarder: ID, msg: PubsubMessage) -> bool:
            # Runs for every first sighting of a message id, our own publishes
            # included, before it is marked seen, delivered or forwarded.
            if len(msg.data) > limit:
                return _reject(topic, msg, stats, "oversize")
            if validator is None:
                return True
            try:
                ok = validator(ID(msg.from_id).to_base58(), msg.data)
            except Exception:  # a validator bug must not take the pubsub loop down
                log.exception("validator for topic %r raised; message rejected", topic)
                return _reject(topic, msg, stats, "error")
            return True if ok else _reject(topic, msg, stats, "invalid")

        return validate

    def _make_async_validator(
        self,
        topic: str,
        validator: Callable[[str, bytes], Awaitable[bool]],
        stats: TopicStats,
    ) -> Callable[[ID, PubsubMessage], Awaitable[bool]]:
        limit = self.max_msg_bytes

        async def validate(_forwarder: ID, msg: PubsubMessage) -> bool:
            if len(msg.data) > limit:
                return _reject(topic, msg, stats, "oversize")
            try:
                ok = await validator(ID(msg.from_id).to_base58(), msg.data)
            except trio.Cancelled:
                # py-libp2p cancels validators at its timeout (and everything at
                # shutdown); either way the message is not accepted.
                _reject(topic, msg, stats, "timeout")
                raise
            except Exception:  # as for plain validators: reject, log, carry on
                log.exception("validator for topic %r raised; message rejected", topic)
                return _reject(topic, msg, stats, "error")
            return True if ok else _reject(topic, msg, stats, "invalid")

        return validate

    async def _pump(
        self, topic: str, send: trio.MemorySendChannel[tuple[str, bytes]], stats: TopicStats
    ) -> None:
        sub = await self._pubsub.subscribe(topic)
        async with send:
            while True:
                msg = await sub.get()
                if msg.from_id == self._my_id_bytes:
                    continue  # our own publish, looped back by libp2p
                try:
                    send.send_nowait((ID(msg.from_id).to_base58(), msg.data))
                except trio.WouldBlock:
                    stats.dropped_full += 1
                    continue
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break  # the consumer closed its end: leave the topic
                stats.delivered += 1
        # Leave fully before the name is free again, so a new subscribe
        # cannot be undone by this old pump.
        await self._pubsub.unsubscribe(topic)
        self._pubsub.remove_topic_validator(topic)
        self._subscribed.discard(topic)

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic``; see :meth:`net.Transport.publish`."""
        check_topic(topic)
        if not isinstance(data, (bytes, bytearray)):
            raise NetUsageError("data must be bytes")
        if len(data) > self.max_msg_bytes:
            raise MessageTooLarge(len(data), self.max_msg_bytes)
        await self._pacer.acquire()
        await self._pubsub.publish(topic, bytes(data))
        self._topic_stats(topic).published += 1

    def topic_peers(self, topic: str) -> list[str]:
        """Peers we know to be subscribed to ``topic``."""
        return sorted(p.to_base58() for p in self._pubsub.peer_topics.get(topic, ()))

    def stats(self) -> dict[str, TopicStats]:
        """Copies of the per-topic counters."""
        return {t: dataclasses.replace(s) for t, s in self._stats.items()}


_REASON_FIELD = {"invalid": "invalid", "error": "errors", "timeout": "timeouts",
                 "oversize": "oversize"}


def _reject(topic: str, msg: PubsubMessage, stats: TopicStats, reason: str) -> bool:
    """Count a rejection by reason, log it at debug level, and return False (the verdict)."""
    field = _REASON_FIELD[reason]
    setattr(stats, field, getattr(stats, field) + 1)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("gossip on %r rejected (%s): %d bytes from %s", topic, reason,
                  len(msg.data), ID(msg.from_id).to_base58())
    return False
