"""Unit tests of the core's rules (Algorithm 1), one behaviour each."""

from __future__ import annotations

import collections
import dataclasses
import itertools

import pytest

from consensus import ConsensusMisuseError, verify_commit
from consensus.core import Core
from consensus.events import (
    Broadcast,
    CommitBlock,
    CommittedBlockReceived,
    Persist,
    ProposalReceived,
    ReportEvidence,
    RequestSync,
    Start,
    VoteReceived,
)
from consensus.messages import VoteMessage, decode_message, encode_message
from consensus.wal_api import event_record
from tests.consensus._core_harness import (
    CHAIN,
    NIL,
    NOW,
    Harness,
    Step,
    TxApp,
    VoteType,
    commits,
    own_proposals,
    own_votes,
    timeouts,
)

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT



def test_prevote_for_valid_proposal_persisted_before_broadcast():
    h = Harness()
    h.start()
    b = h.make_block()
    out = h.propose(0, b)
    (vote,) = own_votes(out, PV)
    assert vote.block_id == b.id() and vote.round == 0 and h.core.step == Step.PREVOTE
    persist_at = max(i for i, a in enumerate(out) if isinstance(a, Persist))
    send_at = next(i for i, a in enumerate(out) if isinstance(a, Broadcast))
    assert persist_at < send_at
    assert event_record_of_vote(vote) in {a.record for a in out if isinstance(a, Persist)}


def event_record_of_vote(vote):
    return event_record(VoteReceived(vote=vote, now_ms=NOW))


def test_invalid_proposal_gets_nil_prevote():
    h = Harness()
    h.start()
    bad = h.make_block(app_hash=b"\x01" * 32)  # not our app hash after the previous block
    (vote,) = own_votes(h.propose(0, bad), PV)
    assert vote.is_nil
    h2 = Harness()
    h2.app.reject.add(b"tx-1")  # the application refuses the block
    h2.start()
    (vote,) = own_votes(h2.propose(0, h2.make_block()), PV)
    assert vote.is_nil
    h3 = Harness()
    h3.start()
    (vote,) = own_votes(h3.propose(0, h3.make_block(txs=(b"say-no",))), PV)
    assert vote.is_nil  # an application may also answer False


def test_untimely_proposal_gets_nil_prevote():
    h = Harness()
    h.start()
    future = h.make_block(time_ms=NOW + 60_000)
    (vote,) = own_votes(h.propose(0, future), PV)
    assert vote.is_nil


def test_propose_timeout_prevotes_nil():
    h = Harness()
    out = h.start()
    (t,) = [a for a in timeouts(out) if a.step == Step.PROPOSE]
    assert (t.height, t.round, t.delay_ms) == (1, 0, 1000)
    (vote,) = own_votes(h.timeout(0, Step.PROPOSE), PV)
    assert vote.is_nil and h.core.step == Step.PREVOTE
    # a stale timeout (another round or step) does nothing
    assert h.timeout(0, Step.PROPOSE) == []


def test_nil_precommit_on_prevote_timeout():
    h = Harness()
    h.start()
    b = h.make_block()
    h.propose(0, b)
    a, c = h.others()[:2]
    h.vote(a, PV, 0, NIL)
    out = h.vote(c, PV, 0, b"\x07" * 32)  # 3 prevotes for anything, no polka
    (t,) = [x for x in timeouts(out) if x.step == Step.PREVOTE]
    assert t.delay_ms == 400
    assert own_votes(out) == []
    (vote,) = own_votes(h.timeout(0, Step.PREVOTE), PC)
    assert vote.is_nil and h.core.step == Step.PRECOMMIT
    assert h.core.locked == (-1, None)


def test_nil_polka_precommits_nil():
    h = Harness()
    h.start()
    h.timeout(0, Step.PROPOSE)
    out = h.votes(h.others()[:2], PV, 0, NIL)
    (vote,) = own_votes(out, PC)
    assert vote.is_nil


def test_polka_locks_and_sets_valid_value():
    h = Harness()
    b, out = h.lock_on_round0()
    (vote,) = own_votes(out, PC)
    assert vote.block_id == b.id()
    assert h.core.locked == (0, b.id()) and h.core.valid == (0, b.id())


def test_polka_after_precommit_updates_valid_but_not_lock():
    h = Harness()
    h.start()
    b = h.make_block()
    h.propose(0, b)
    a, c, d = h.others()
    h.timeout(0, Step.PROPOSE)  # already prevoted (for b) -> stale
    h.votes([a, c], PV, 0, NIL)
    h.vote(d, PV, 0, b.id())
    h.timeout(0, Step.PREVOTE)  # precommit nil
    assert h.core.step == Step.PRECOMMIT
    assert h.core.locked == (-1, None) and h.core.valid == (-1, None)


def go_to_round(h: Harness, round: int) -> None:
    """Finish the current round with nil precommits from the others and the timeout."""
    r = h.core.round
    h.votes(h.others(), PC, r, NIL)
    h.timeout(r, Step.PRECOMMIT)
    assert h.core.round == round


def test_locked_validator_prevotes_nil_for_other_fresh_block():
    h = Harness()
    b, _ = h.lock_on_round0()
    go_to_round(h, 1)
    other = h.make_block(txs=(b"other",), proposer=h.core.valset.proposer_index(1))
    (vote,) = own_votes(h.propose(1, other), PV)
    assert vote.is_nil and h.core.locked == (0, b.id())
    # ...but prevotes its locked block when it is proposed again
    h2 = Harness()
    b2, _ = h2.lock_on_round0()
    go_to_round(h2, 1)
    pol = tuple(h2.make_vote(i, PV, 0, b2.id()) for i in h2.others()[:2])
    (vote,) = own_votes(h2.propose(1, b2, pol_round=0, pol_votes=pol), PV)
    assert vote.block_id == b2.id()


def test_unlock_on_newer_polka():
    """Locked on B in round 0; a re-proposal of C with a polka from round 1 wins (line 28)."""
    h = Harness()
    b, _ = h.lock_on_round0()
    assert h.core.locked == (0, b.id())
    go_to_round(h, 1)
    c = h.make_block(txs=(b"c",), proposer=h.core.valset.proposer_index(1))
    # in round 1 the core never saw C's proposal and prevoted nil on timeout
    h.timeout(1, Step.PROPOSE)
    go_to_round(h, 2)
    pol = tuple(h.make_vote(i, PV, 1, c.id()) for i in h.others())
    (vote,) = own_votes(h.propose(2, c, pol_round=1, pol_votes=pol), PV)
    assert vote.block_id == c.id()
    # a polka for C in round 2 moves the lock
    (pc,) = own_votes(h.votes(h.others()[:2], PV, 2, c.id()), PC)
    assert pc.block_id == c.id() and h.core.locked == (2, c.id())


def test_no_unlock_on_older_or_missing_polka():
    h = Harness()
    h.lock_on_round0()
    go_to_round(h, 1)
    h.timeout(1, Step.PROPOSE)
    go_to_round(h, 2)
    c = h.make_block(txs=(b"c",), proposer=h.core.valset.proposer_index(1))
    # a re-proposal claiming a polka in round 1 without the prevotes: wait, then nil on timeout
    assert own_votes(h.propose(2, c, pol_round=1)) == []
    (vote,) = own_votes(h.timeout(2, Step.PROPOSE), PV)
    assert vote.is_nil


def test_relock_via_polka_in_later_round():
    """Line 36 in a later round: the core saw the proposal and the polka for C."""
    h = Harness()
    b, _ = h.lock_on_round0()
    go_to_round(h, 1)
    c = h.make_block(txs=(b"c",), proposer=h.core.valset.proposer_index(1))
    assert c.id() != b.id()
    (pv,) = own_votes(h.propose(1, c), PV)
    assert pv.is_nil  # locked on b
    (pc,) = own_votes(h.votes(h.others(), PV, 1, c.id()), PC)
    assert pc.block_id == c.id() and h.core.locked == (1, c.id())


def test_round_skip_on_one_third_of_a_later_round():
    h = Harness()
    h.start()
    a, c, _ = h.others()
    h.vote(a, PV, 2, NIL)
    assert h.core.round == 0  # 1/4 of the power is not more than 1/3
    out = h.vote(c, PC, 2, NIL)
    assert h.core.round == 2 and h.core.step == Step.PROPOSE
    (t,) = [x for x in timeouts(out) if x.step == Step.PROPOSE]
    assert (t.round, t.delay_ms) == (2, 1000 + 500 * 2)
    # the proposer of the skipped-to round proposes at once
    me_next = Harness()
    me_next.start()
    x, y, _ = me_next.others()
    me_next.vote(x, PV, 3, NIL)
    out = me_next.vote(y, PV, 3, NIL)
    assert me_next.core.round == 3 and len(own_proposals(out)) == 1


def test_timeouts_grow_linearly_with_round():
    h = Harness()
    h.start()
    for r in range(4):
        out = h.votes(h.others(), PC, r, NIL)
        (t,) = [x for x in timeouts(out) if x.step == Step.PRECOMMIT]
        assert t.delay_ms == 300 + 200 * r
        out = h.timeout(r, Step.PRECOMMIT)
        (p,) = [x for x in timeouts(out) if x.step == Step.PROPOSE]
        assert p.round == r + 1 and p.delay_ms == 1000 + 500 * (r + 1)


def test_decision_commits_block_with_verifiable_commit():
    h = Harness()
    b, _ = h.lock_on_round0()
    out = h.votes(h.others()[:2], PC, 0, b.id())
    (cb,) = commits(out)
    assert cb.block == b and cb.commit.block_id == b.id()
    verify_commit(CHAIN, h.valset, b.id(), 1, cb.commit)
    assert cb.state.height == 1 and cb.state.last_block_id == b.id()
    assert cb.state.app_hash == h.app.apply_block(b)
    assert h.core.height == 2 and h.core.round == 0
    assert h.app.applied[0] == b


def test_decision_in_earlier_round_while_in_later_round():
    """Line 49 holds for any round: late precommits for round 0 decide in round 1."""
    h = Harness()
    b, _ = h.lock_on_round0()
    a, c, d = h.others()
    h.vote(a, PC, 0, b.id())
    h.vote(c, PC, 0, NIL)  # 3 precommits for anything: timeout, round 1
    h.timeout(0, Step.PRECOMMIT)
    assert h.core.round == 1 and h.core.height == 1
    (cb,) = commits(h.vote(d, PC, 0, b.id()))
    assert cb.block == b and cb.commit.round == 0


def test_proposer_rotation_by_power_in_cluster():
    """Round-0 proposers over 12 heights of a 4-node cluster follow voting power 3:1:1:1."""
    h = Harness(powers=[3, 1, 1, 1])
    cores = [Core(h.params, h.state, TxApp(), h.signers[i]) for i in range(4)]
    queue: collections.deque = collections.deque()
    proposers: list[int] = []

    def run(k, ev):
        for a in cores[k].handle(ev):
            if isinstance(a, Broadcast):
                data = encode_message(a.message)
                queue.extend((j, data) for j in range(4) if j != k)
            elif isinstance(a, CommitBlock) and k == 0:
                proposers.append(h.valset.index_of(a.block.header.proposer_address))

    for k in range(4):
        run(k, Start(now_ms=NOW))
    while queue and len(proposers) < 12:
        k, data = queue.popleft()
        m = decode_message(data)
        run(k, VoteReceived(vote=m.vote, now_ms=NOW) if isinstance(m, VoteMessage)
            else ProposalReceived(message=m, now_ms=NOW))
    assert len(proposers) == 12
    assert [v.power for v in h.valset.validators] == [3, 1, 1, 1]
    counts = collections.Counter(proposers)
    assert counts == {0: 6, 1: 2, 2: 2, 3: 2}
    # never the same light validator twice in a row; the heavy one at most twice in a row
    assert all(not (a == b != 0) for a, b in itertools.pairwise(proposers))


def test_proposer_builds_block_from_app():
    h2 = Harness(me=Harness().valset.proposer_index(0))
    out = h2.start()
    (msg,) = own_proposals(out)
    assert msg.block.txs == (b"tx-1", b"tx-2") and msg.proposal.pol_round == -1
    assert msg.block.header.time_ms == NOW
    assert msg.proposal.verify_signature(CHAIN, h2.signers[h2.me].public_key)
    (pv,) = own_votes(out, PV)
    assert pv.block_id == msg.block.id()
    sends = [i for i, a in enumerate(out) if isinstance(a, Broadcast)]
    assert isinstance(out[sends[0]].message, type(msg))  # proposal is sent before the prevote


def test_equivocation_reported_once_and_not_counted():
    h = Harness()
    h.start()
    b = h.make_block()
    h.propose(0, b)
    a = h.others()[0]
    h.vote(a, PV, 0, b.id())
    out = h.vote(a, PV, 0, NIL)
    (ev,) = [x.evidence for x in out if isinstance(x, ReportEvidence)]
    ev.verify(CHAIN, h.valset)
    assert {ev.vote_a.block_id, ev.vote_b.block_id} == {b.id(), NIL}
    assert not [x for x in h.vote(a, PV, 0, b"\x05" * 32) if isinstance(x, ReportEvidence)]
    assert h.core._votes.get(0, PV).power_for(NIL) == 0


def test_bad_messages_are_rejected_without_state_change():
    h = Harness()
    h.start()
    b = h.make_block()
    a = h.others()[0]
    before = (h.core.round, h.core.step, h.core.stats["rejected"])
    # a vote signed by another key than the validator at its index
    forged = h.make_vote(a, PV, 0, b.id())
    bad = dataclasses.replace(forged, validator_index=h.others()[1])
    assert h.feed(VoteReceived(vote=bad, now_ms=NOW)) == []
    # a proposal from a validator who is not the round's proposer
    wrong = h.make_proposal(0, b, signer=h.valset.proposer_index(1))
    assert h.feed(ProposalReceived(message=wrong, now_ms=NOW)) == []
    # a proposal whose block does not match its id
    good = h.make_proposal(0, b)
    other = h.make_block(txs=(b"x",))
    mismatch = type(good)(proposal=good.proposal, block=other)
    assert h.feed(ProposalReceived(message=mismatch, now_ms=NOW)) == []
    # a vote far in the future of rounds
    assert h.vote(a, PV, 10_000, NIL) == []
    assert h.core.stats["rejected"] == before[2] + 4
    assert (h.core.round, h.core.step) == before[:2]
    assert h.core._proposals == {}


def test_other_heights():
    h = Harness()
    h.start()
    a = h.others()[0]
    assert h.vote(a, PV, 0, NIL, height=2) == []  # buffered for height 2
    out = h.vote(a, PV, 0, NIL, height=5)
    assert out == [RequestSync(1)]
    assert h.vote(a, PV, 0, NIL, height=6) == []  # rate limited


def test_block_sync_commits_and_rejects_forged_commit():
    donor = Harness()
    b, _ = donor.lock_on_round0()
    (cb,) = commits(donor.votes(donor.others()[:2], PC, 0, b.id()))
    h = Harness()
    h.start()
    forged = type(cb.commit)(height=1, round=0, block_id=b.id(),
                             signatures=tuple(b"\x01" * 64 for _ in cb.commit.signatures))
    assert h.feed(CommittedBlockReceived(block=b, commit=forged, now_ms=NOW)) == []
    assert "synced block" in h.core.last_rejection and h.core.height == 1
    (got,) = commits(h.feed(CommittedBlockReceived(block=b, commit=cb.commit, now_ms=NOW)))
    assert got.block == b and h.core.height == 2


def test_misuse_raises():
    h = Harness()
    with pytest.raises(ConsensusMisuseError):
        h.timeout(0, Step.PROPOSE)  # before Start
    h.start()
    with pytest.raises(ConsensusMisuseError):
        h.start()


def test_timeout_commit_delays_round_zero():
    params = dataclasses.replace(Harness().params, timeout_commit_ms=200)
    h = Harness(params=params)
    out = h.start()
    assert [t.step for t in timeouts(out)] == [Step.GOSSIP, Step.NEW_HEIGHT]
    assert h.core.step == Step.NEW_HEIGHT
    b = h.make_block()
    assert own_votes(h.propose(0, b)) == []  # stored, but round 0 has not started
    out = h.timeout(0, Step.NEW_HEIGHT)
    (vote,) = own_votes(out, PV)
    assert vote.block_id == b.id() and h.core.step == Step.PREVOTE
    # after a decision the next height waits again
    h.votes(h.others()[:2], PV, 0, b.id())
    out = h.votes(h.others()[:2], PC, 0, b.id())
    assert commits(out) and h.core.height == 2 and h.core.step == Step.NEW_HEIGHT
    assert any(t.step == Step.NEW_HEIGHT and t.height == 2 and t.delay_ms == 200
               for t in timeouts(out))
