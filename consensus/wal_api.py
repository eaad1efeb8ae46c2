"""The WAL interface and the format of what the core logs.

The core emits ``Persist(record)`` for every input that changed its state
(an accepted proposal or vote, its own ones included, and a timeout that
moved it on), each record written before the actions that input caused.
After a crash the driver passes ``wal.records()`` to
:meth:`consensus.core.Core.restore`, which replays them through the same
handler, so the node comes back in exactly the state it had reached, with
the same locks, and re-uses the proposals and votes it had already signed
instead of signing new ones.

Record format (canonical msgpack arrays; ``now_ms`` is the input's clock
reading, so a replay sees the same times)::

    [1, height, now_ms, proposal_message]   # ProposalReceived (ours or a peer's)
    [2, height, now_ms, vote]               # VoteReceived (ours or a peer's)
    [3, height, now_ms, round, step]        # TimeoutFired
    [4, height, now_ms, 0]                  # TxsAvailable (the 0 keeps records >= 4 long)

:func:`record_height` reads only the first two fields, so a file WAL can
file records by height without parsing blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import msgpack

from .encoding import DecodeError, decode, encode, expect_int, expect_list
from .errors import ConsensusMisuseError, InvariantError
from .events import Event, ProposalReceived, Step, TimeoutFired, TxsAvailable, VoteReceived
from .messages import ProposalMessage, message_from_value
from .vote import Vote

REC_PROPOSAL = 1
REC_VOTE = 2
REC_TIMEOUT = 3
REC_TXS = 4


class WAL(Protocol):
    def append(self, record: bytes) -> None:
        """Append ``record``; it is durable when this returns."""
        ...

    def records(self) -> Iterator[bytes]:
        """All records in append order (after any torn-tail repair)."""
        ...

    def truncate_before_height(self, height: int) -> None:
        """Drop records of heights below ``height`` (their blocks are stored)."""
        ...


def event_record(event: Event) -> bytes:
    """The WAL record for a proposal, vote, timeout or txs-available event."""
    if isinstance(event, ProposalReceived):
        m = event.message
        return encode([REC_PROPOSAL, m.proposal.height, event.now_ms, m.to_value()])
    if isinstance(event, VoteReceived):
        return encode([REC_VOTE, event.vote.height, event.now_ms, event.vote.to_value()])
    if isinstance(event, TimeoutFired):
        return encode([REC_TIMEOUT, event.height, event.now_ms, event.round, int(event.step)])
    if isinstance(event, TxsAvailable):
        return encode([REC_TXS, event.height, event.now_ms, 0])
    raise ConsensusMisuseError(f"{type(event).__name__} is not logged")


def record_event(record: bytes) -> Event:
    """Parse a WAL record back into the event it logged; raise only DecodeError."""
    f = expect_list(decode(record), what="wal record", max_length=5)
    if len(f) < 4:
        raise DecodeError("wal record: too short")
    kind = expect_int(f[0], what="wal.kind", lo=1, hi=4)
    height = expect_int(f[1], what="wal.height", lo=1, hi=2**63 - 1)
    now = expect_int(f[2], what="wal.now_ms", hi=2**63 - 1)
    try:
        if kind == REC_PROPOSAL:
            expect_list(f, 4, what="wal proposal")
            msg = message_from_value(f[3])
            if not isinstance(msg, ProposalMessage) or msg.proposal.height != height:
                raise DecodeError("wal proposal: bad message")
            return ProposalReceived(message=msg, now_ms=now)
        if kind == REC_VOTE:
            expect_list(f, 4, what="wal vote")
            vote = Vote.from_value(f[3])
            if vote.height != height:
                raise DecodeError("wal vote: height mismatch")
            return VoteReceived(vote=vote, now_ms=now)
        if kind == REC_TXS:
            expect_list(f, 4, what="wal txs available")
            return TxsAvailable(height=height, now_ms=now)
        expect_list(f, 5, what="wal timeout")
        return TimeoutFired(height=height, round=expect_int(f[3], what="wal.round", hi=2**31 - 1),
                            step=Step(expect_int(f[4], what="wal.step", hi=max(Step))),
                            now_ms=now)
    except ConsensusMisuseError as exc:
        raise DecodeError(f"wal record: {exc}") from None


def record_height(record: bytes) -> int:
    """The consensus height a record belongs to, reading only its first fields."""
    unpacker = msgpack.Unpacker(raw=True, max_buffer_size=max(len(record), 1))
    unpacker.feed(record)
    try:
        n = unpacker.read_array_header()
        if n < 2:
            raise DecodeError("wal record: too short")
        unpacker.unpack()
        height = unpacker.unpack()
    except DecodeError:
        raise
    except (ValueError, msgpack.UnpackException, msgpack.OutOfData) as exc:
        raise DecodeError(f"wal record: {type(exc).__name__}") from None
    if isinstance(height, bool) or not isinstance(height, int) or height < 1:
        raise DecodeError("wal record: bad height")
    return height


def event_height(ev: Event) -> int:
    """The height of a logged event."""
    if isinstance(ev, ProposalReceived):
        return ev.message.proposal.height
    if isinstance(ev, VoteReceived):
        return ev.vote.height
    if isinstance(ev, (TimeoutFired, TxsAvailable)):
        return ev.height
    raise ConsensusMisuseError(f"{type(ev).__name__} is not logged")


def replay_events(records: Iterable[bytes], above_height: int) -> list[Event]:
    """The logged events of heights above ``above_height``, in order, for a replay.

    Raises:
        InvariantError: a record does not parse. The WAL checks integrity, so
            this is a bug or a disk that lied; the node must not sign anything.
    """
    events: list[Event] = []
    for record in records:
        try:
            ev = record_event(record)
        except DecodeError as exc:
            raise InvariantError(f"unreadable WAL record: {exc}") from None
        if event_height(ev) > above_height:
            events.append(ev)
    return events
