"""create_empty_blocks: round 0 waits for transactions (CometBFT's WaitForTxs).

With the wait on, a height after a block *without* transactions does not
start its proposal step until the driver reports transactions
(``TxsAvailable``), the empty-block interval runs out, or another validator
shows round-0 activity (a proposal or a vote). A height after a block *with*
transactions, and the first height after a start, never wait: that block's
header commits the app hash the transactions produced.
"""

from __future__ import annotations

from dataclasses import replace

from consensus.events import (
    Broadcast,
    ScheduleTimeout,
    Step,
    TxsAvailable,
    WaitForTxs,
)
from consensus.messages import ProposalMessage
from consensus.state import ConsensusParams
from consensus.vote import VoteType
from consensus.wal_api import record_event
from tests.consensus._core_harness import (
    NOW,
    PARAMS,
    Harness,
    TxApp,
    commits,
    own_votes,
    persisted_events,
)

WAIT = replace(PARAMS, create_empty_blocks=False)


def waits(actions: list) -> list[WaitForTxs]:
    return [a for a in actions if isinstance(a, WaitForTxs)]


def propose_timeouts(actions: list, height: int = 2) -> list[ScheduleTimeout]:
    return [a for a in actions if isinstance(a, ScheduleTimeout)
            and a.step == Step.PROPOSE and a.height == height]


def commit_height1(h: Harness, txs: tuple[bytes, ...] = ()) -> list:
    """Height 1 decided with a block holding ``txs``. Without an interval it does
    not wait (the first height after a start); with one it waits like any other."""
    first = h.start()
    if h.params.create_empty_blocks_interval_ms:
        assert waits(first) == [WaitForTxs(1)]
        first = h.feed(TxsAvailable(height=1, now_ms=NOW))
    assert not waits(first) and propose_timeouts(first, height=1)
    b = h.make_block(txs=txs)
    h.propose(0, b)
    actions = h.votes(h.others(), VoteType.PRECOMMIT, 0, b.id())
    assert len(commits(actions)) == 1 and h.core.height == 2
    return actions


def test_after_an_empty_block_round0_waits_until_txs_are_available() -> None:
    h = Harness(params=WAIT, app=TxApp(txs=[]))
    actions = commit_height1(h)
    assert waits(actions) == [WaitForTxs(2)]
    assert not propose_timeouts(actions) and h.core.step == Step.WAIT_FOR_TXS
    # a wrong-height answer changes nothing
    assert h.feed(TxsAvailable(height=5, now_ms=NOW)) == []
    actions = h.feed(TxsAvailable(height=2, now_ms=NOW + 10))
    assert propose_timeouts(actions) and h.core.step == Step.PROPOSE
    assert [type(e).__name__ for e in persisted_events(actions)] == ["TxsAvailable"]
    assert h.feed(TxsAvailable(height=2, now_ms=NOW + 20)) == []  # answered once


def test_the_waiting_proposer_proposes_when_txs_arrive() -> None:
    h = Harness(params=WAIT, app=TxApp(txs=[]))
    commit_height1(h)
    if h.core.proposer_index(0) != h.me:
        h = Harness(params=WAIT, app=TxApp(txs=[]),
                    me=h.core.valset.proposer_index(0))  # height 2's round-0 proposer
        h.start()
        b = h.make_block(txs=())
        h.propose(0, b)
        h.votes(h.others(), VoteType.PRECOMMIT, 0, b.id())
    assert h.core.height == 2 and h.core.step == Step.WAIT_FOR_TXS
    h.app.txs = [b"tx-late"]
    actions = h.feed(TxsAvailable(height=2, now_ms=NOW + 50))
    sent = [a.message for a in actions
            if isinstance(a, Broadcast) and isinstance(a.message, ProposalMessage)]
    assert len(sent) == 1 and sent[0].block.txs == (b"tx-late",)


def test_after_a_block_with_txs_the_next_height_does_not_wait() -> None:
    h = Harness(params=WAIT)
    actions = commit_height1(h, txs=(b"tx-1",))
    assert not waits(actions) and propose_timeouts(actions)


def test_with_an_interval_the_interval_block_commits_the_app_hash() -> None:
    # no extra block after one with transactions: the next one comes within the interval
    h = Harness(params=replace(WAIT, create_empty_blocks_interval_ms=1_000))
    actions = commit_height1(h, txs=(b"tx-1",))
    assert waits(actions) == [WaitForTxs(2)] and not propose_timeouts(actions)


def test_a_proposal_or_vote_for_round0_ends_the_wait() -> None:
    h = Harness(params=WAIT, app=TxApp(txs=[]))
    commit_height1(h)
    b = h.make_block(txs=(b"tx-1",), time_ms=NOW + 100, proposer=h.core.proposer_index(0))
    actions = h.propose(0, b, now=NOW + 100)
    assert propose_timeouts(actions)
    assert [v.block_id for v in own_votes(actions, VoteType.PREVOTE)] == [b.id()]

    h = Harness(params=WAIT, app=TxApp(txs=[]))
    commit_height1(h)
    other = h.others()[0]
    actions = h.vote(other, VoteType.PREVOTE, 0, b"\x00" * 32, height=2)
    assert propose_timeouts(actions) and h.core.step == Step.PROPOSE


def test_the_interval_ends_the_wait_with_an_empty_block() -> None:
    params = replace(WAIT, create_empty_blocks_interval_ms=1_500)
    h = Harness(params=params, app=TxApp(txs=[]))
    actions = commit_height1(h)
    assert waits(actions) and [(a.height, a.round, a.delay_ms) for a in actions
                               if isinstance(a, ScheduleTimeout)
                               and a.step == Step.WAIT_FOR_TXS] == [(2, 0, 1_500)]
    actions = h.timeout(0, Step.WAIT_FOR_TXS, height=2, now=NOW + 1_500)
    assert propose_timeouts(actions) and h.core.step == Step.PROPOSE
    # create_empty_blocks = true with an interval waits too (CometBFT's WaitForTxs)
    h = Harness(params=replace(PARAMS, create_empty_blocks_interval_ms=1_000),
                app=TxApp(txs=[]))
    assert waits(commit_height1(h))


def test_default_params_never_wait() -> None:
    assert not ConsensusParams().waits_for_txs
    h = Harness(app=TxApp(txs=[]))
    actions = commit_height1(h)
    assert not waits(actions) and propose_timeouts(actions)


def test_replay_restores_the_end_of_the_wait_and_a_restart_does_not_wait() -> None:
    h = Harness(params=WAIT, app=TxApp(txs=[]))
    commit_height1(h)
    h.feed(TxsAvailable(height=2, now_ms=NOW + 10))
    height2 = [r for r in h.records if isinstance(record_event(r), TxsAvailable)]
    assert len(height2) == 1
    actions = h.restore(records=height2)
    assert h.core.height == 2 and h.core.step == Step.PROPOSE and not waits(actions)
    # without the record, the restarted core does not wait either: it cannot
    # know whether the last block held transactions, so it makes the proof block
    actions = h.restore(records=[])
    assert h.core.step == Step.PROPOSE and not waits(actions)


def test_params_reject_a_non_bool_create_empty_blocks() -> None:
    import pytest

    from consensus.errors import ConsensusMisuseError
    with pytest.raises(ConsensusMisuseError):
        ConsensusParams(create_empty_blocks=1)  # type: ignore[arg-type]
    with pytest.raises(ConsensusMisuseError):
        ConsensusParams(create_empty_blocks_interval_ms=-1)
