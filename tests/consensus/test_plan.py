"""consensus.plan: the one order of effects every driver (daemon, simulator, crash tests) runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.errors import ConsensusMisuseError
from consensus.events import (
    Broadcast,
    CommitBlock,
    Persist,
    RequestSync,
    ScheduleTimeout,
    Step,
    WaitForTxs,
)
from consensus.plan import Planner, TruncateWAL, WriteWAL


def _commit(height: int) -> CommitBlock:
    # The planner reads only the block's height.
    return CommitBlock(SimpleNamespace(height=height), None, None)  # type: ignore[arg-type]


MSG = object()  # a Broadcast's message is opaque to the planner
TIMER = ScheduleTimeout(3, 0, Step.PROPOSE, 100)


def test_records_are_written_once_right_before_our_message() -> None:
    p = Planner()
    out = p.plan([Persist(b"peer-vote"), TIMER, Persist(b"my-vote"), Broadcast(MSG)])
    assert out == [TIMER, WriteWAL((b"peer-vote", b"my-vote")), Broadcast(MSG)]
    assert p.pending == ()


def test_records_wait_across_batches_until_something_leaves_the_node() -> None:
    p = Planner()
    assert p.plan([Persist(b"a"), TIMER]) == [TIMER]
    assert p.plan([Persist(b"b"), RequestSync(3), WaitForTxs(3)]) == [RequestSync(3),
                                                                      WaitForTxs(3)]
    assert p.pending == (b"a", b"b")
    assert p.plan([_commit(3)]) == [WriteWAL((b"a", b"b")), _commit(3), TruncateWAL(4)]


def test_a_crash_loses_the_held_records_and_shutdown_writes_them() -> None:
    p = Planner()
    p.plan([Persist(b"a")])
    p.crashed()
    assert p.pending == () and p.flush() == []
    p.plan([Persist(b"b")])
    assert p.flush() == [WriteWAL((b"b",))] and p.pending == ()


def test_too_many_held_records_are_written() -> None:
    p = Planner(max_pending=3)
    assert p.plan([Persist(b"1"), Persist(b"2")]) == []
    assert p.plan([Persist(b"3"), TIMER]) == [TIMER, WriteWAL((b"1", b"2", b"3"))]


def test_misuse_is_refused() -> None:
    with pytest.raises(ConsensusMisuseError):
        Planner().plan([object()])  # type: ignore[list-item]
    with pytest.raises(ConsensusMisuseError):
        Planner(max_pending=0)
    with pytest.raises(ConsensusMisuseError):
        WriteWAL(())
    with pytest.raises(ConsensusMisuseError):
        TruncateWAL(0)


_action = st.one_of(
    st.binary(min_size=1, max_size=4).map(Persist),
    st.just(Broadcast(MSG)),
    st.just(TIMER),
    st.integers(1, 50).map(_commit),
    st.integers(1, 50).map(WaitForTxs),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_action, max_size=8), max_size=6), st.integers(1, 5))
def test_every_record_is_durable_before_anything_after_it_leaves(batches, max_pending) -> None:
    """The WAL rule, for any sequence of batches: records are written in order, each before
    any Broadcast or CommitBlock that came after it; nothing else is added, dropped or
    reordered; every commit is followed by the truncation of its height."""
    p = Planner(max_pending=max_pending)
    effects = [e for batch in batches for e in p.plan(batch)] + p.flush()
    actions = [a for batch in batches for a in batch]
    written = [r for e in effects if isinstance(e, WriteWAL) for r in e.records]
    assert written == [a.record for a in actions if isinstance(a, Persist)]
    assert [e for e in effects if not isinstance(e, (WriteWAL, TruncateWAL))] == \
        [a for a in actions if not isinstance(a, Persist)]
    # position of each record's write vs. the next outgoing effect after its Persist
    persisted_before = 0
    seen_out = 0
    need: list[int] = []  # records that must be written before the k-th outgoing effect
    for a in actions:
        if isinstance(a, Persist):
            persisted_before += 1
        elif isinstance(a, (Broadcast, CommitBlock)):
            need.append(persisted_before)
    done = 0
    for e in effects:
        if isinstance(e, WriteWAL):
            done += len(e.records)
        elif isinstance(e, (Broadcast, CommitBlock)):
            assert done >= need[seen_out]
            seen_out += 1
    for k, e in enumerate(effects):
        if isinstance(e, CommitBlock):
            assert effects[k + 1] == TruncateWAL(e.block.height + 1)
