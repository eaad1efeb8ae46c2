"""The event bus: committed blocks fan out to websocket clients and waiting RPC calls.

The daemon calls :meth:`EventBus.publish` once per committed block from its
trio task. Publishing never blocks and never fails: every subscriber has its
own bounded queue, and a subscriber whose queue is full is *dropped* (its
channel is closed, :attr:`Subscription.dropped` is set) instead of slowing
the node. A websocket client sees that as its connection being closed.

Queries are CometBFT's event query language cut down to what we emit:
``tm.event='NewBlock'``, ``tm.event='NewBlockHeader'`` and ``tm.event='Tx'``,
the latter optionally ``AND tx.hash='HEX'`` and/or ``AND tx.height=N``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Self

import trio

from .backend import NewBlockEvent, TxView
from .errors import InvalidParams, Overloaded

EVENT_TYPES = ("NewBlock", "NewBlockHeader", "Tx")
_CLAUSE_RE = re.compile(r"^\s*([a-z.]+)\s*=\s*(?:'([^']*)'|([0-9]+))\s*$")
MAX_QUERY_LEN = 512


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A parsed subscription query; :attr:`text` is what the client sent."""

    text: str
    event: str
    tx_hash: bytes | None = None
    tx_height: int | None = None

    def wants_block(self) -> bool:
        return self.event in ("NewBlock", "NewBlockHeader")


def parse_query(text: str) -> EventQuery:
    """Parse a subscription query.

    Raises:
        InvalidParams: unsupported syntax, key or event type.
    """
    if not isinstance(text, str) or len(text) > MAX_QUERY_LEN:
        raise InvalidParams("query: expected a string of at most 512 characters")
    event: str | None = None
    tx_hash: bytes | None = None
    tx_height: int | None = None
    for clause in re.split(r"\s+AND\s+", text.strip()):
        m = _CLAUSE_RE.match(clause)
        if not m:
            raise InvalidParams(f"query: cannot parse {clause!r}; expected key='value' "
                                "clauses joined by AND")
        key, quoted, number = m.group(1), m.group(2), m.group(3)
        if key == "tm.event" and quoted is not None and event is None:
            if quoted not in EVENT_TYPES:
                raise InvalidParams(f"query: unknown event {quoted!r}; one of {EVENT_TYPES}")
            event = quoted
        elif key == "tx.hash" and quoted is not None and tx_hash is None:
            try:
                tx_hash = bytes.fromhex(quoted)
            except ValueError:
                raise InvalidParams("query: tx.hash must be hex") from None
        elif key == "tx.height" and number is not None and tx_height is None:
            tx_height = int(number)
        else:
            raise InvalidParams(f"query: unsupported or repeated condition {clause.strip()!r}")
    if event is None:
        raise InvalidParams("query: tm.event='...' is required")
    if (tx_hash is not None or tx_height is not None) and event != "Tx":
        raise InvalidParams("query: tx.hash and tx.height apply to tm.event='Tx' only")
    return EventQuery(text=text, event=event, tx_hash=tx_hash, tx_height=tx_height)


class Subscription:
    """One subscriber's bounded queue of :class:`NewBlockEvent`.

    Iterate it (``async for event in sub``) or call :meth:`receive`; iteration
    ends when the subscription is closed or dropped.
    """

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._send, self._recv = trio.open_memory_channel[NewBlockEvent](maxsize)
        self.dropped = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> NewBlockEvent:
        try:
            return await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def receive(self) -> NewBlockEvent:
        """Next event. Raises trio.EndOfChannel once closed or dropped and drained."""
        return await self._recv.receive()

    def close(self) -> None:
        self._bus._remove(self)
        self._send.close()

    def _offer(self, event: NewBlockEvent) -> bool:
        try:
            self._send.send_nowait(event)
            return True
        except trio.WouldBlock:
            self.dropped = True
            self._send.close()
            return False
        except trio.ClosedResourceError:
            return False


class TxWaiter:
    """Waits for one transaction hash to appear in a published block."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self.tx: TxView | None = None

    async def wait(self) -> TxView:
        await self._event.wait()
        assert self.tx is not None
        return self.tx

    def _resolve(self, tx: TxView) -> None:
        if self.tx is None:
            self.tx = tx
            self._event.set()


class EventBus:
    """Fan-out of committed blocks to bounded subscriber queues, plus per-hash tx waiters.

    Tx waiters (``broadcast_tx_commit``) are kept in a dict by hash, so a
    block costs one lookup per transaction however many callers wait, instead
    of every waiter scanning every block.
    """

    def __init__(self, *, max_subscribers: int = 1000, max_tx_waiters: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._max = max_subscribers
        self._waiters: dict[bytes, list[TxWaiter]] = {}
        self._n_waiters = 0
        self._max_waiters = max_tx_waiters
        self.published = 0
        self.dropped_subscribers = 0

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, maxsize: int = 100) -> Subscription:
        """A new subscription holding at most ``maxsize`` undelivered events.

        Raises:
            Overloaded: the bus already has ``max_subscribers``.
        """
        if len(self._subs) >= self._max:
            raise Overloaded(f"too many subscribers (max {self._max})")
        sub = Subscription(self, maxsize)
        self._subs.append(sub)
        return sub

    @contextmanager
    def watch_tx(self, tx_hash: bytes) -> Iterator[TxWaiter]:
        """Register a waiter for ``tx_hash`` for the duration of the ``with`` block.

        Raises:
            Overloaded: ``max_tx_waiters`` callers are already waiting.
        """
        if self._n_waiters >= self._max_waiters:
            raise Overloaded(f"too many callers waiting for commits (max {self._max_waiters})")
        waiter = TxWaiter()
        self._waiters.setdefault(tx_hash, []).append(waiter)
        self._n_waiters += 1
        try:
            yield waiter
        finally:
            self._n_waiters -= 1
            waiting = self._waiters.get(tx_hash, [])
            waiting.remove(waiter)
            if not waiting:
                self._waiters.pop(tx_hash, None)

    @property
    def tx_waiters(self) -> int:
        return self._n_waiters

    def publish(self, event: NewBlockEvent) -> None:
        """Offer ``event`` to every subscriber; never blocks; drops full subscribers.

        Call from the trio thread that runs the RPC server (memory channels are
        not thread-safe); from a worker thread use ``trio.from_thread.run_sync``.
        """
        self.published += 1
        if self._waiters:
            for tx in event.txs:
                for waiter in self._waiters.get(tx.hash, ()):
                    waiter._resolve(tx)
        for sub in list(self._subs):
            if not sub._offer(event):
                self._remove(sub)
                if sub.dropped:
                    self.dropped_subscribers += 1

    def _remove(self, sub: Subscription) -> None:
        try:
            self._subs.remove(sub)
        except ValueError:
            pass

    def __iter__(self) -> Iterator[Subscription]:
        return iter(list(self._subs))
