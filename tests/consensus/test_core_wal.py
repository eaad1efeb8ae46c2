"""WAL discipline of the core: persist before send, replay through the same handler,
never a conflicting signature after a crash. (The file WAL and crash tests with real
files live in test_wal_file.py / test_crash_recovery.py.)"""

from __future__ import annotations

import pytest

from consensus import InvariantError
from consensus.encoding import DecodeError, encode
from consensus.events import Broadcast, Persist, VoteReceived
from consensus.memwal import MemWAL
from consensus.wal_api import event_record, record_event, record_height
from tests.consensus._core_harness import (
    NIL,
    NOW,
    Harness,
    Step,
    TxApp,
    VoteType,
    commits,
    own_proposals,
    own_votes,
)

PV, PC = VoteType.PREVOTE, VoteType.PRECOMMIT



def test_records_round_trip_and_height():
    h = Harness()
    h.lock_on_round0()
    assert h.records
    for rec in h.records:
        ev = record_event(rec)
        assert event_record(ev) == rec and record_height(rec) == 1
    with pytest.raises(DecodeError):
        record_height(b"\x01")
    with pytest.raises(DecodeError):
        record_event(encode([9, 1, 0, 0]))


def test_memwal_truncates_by_height():
    h = Harness()
    b, _ = h.lock_on_round0()
    h.votes(h.others()[:2], PC, 0, b.id())  # decide height 1
    h.timeout(0, Step.PROPOSE, height=2)
    wal = MemWAL()
    for rec in h.records:
        wal.append(rec)
    heights = [record_height(r) for r in wal.records()]
    assert 1 in heights and 2 in heights
    wal.truncate_before_height(2)
    assert {record_height(r) for r in wal.records()} == {2}


def test_crash_between_persist_and_send_resends_same_vote():
    h = Harness()
    h.start()
    b = h.make_block()
    out = h.propose(0, b)
    (vote,) = own_votes(out, PV)
    # the crash: every Persist of the batch is durable, the Broadcast never ran
    actions = h.restore()
    assert not [a for a in actions if isinstance(a, Persist)]
    assert own_votes(actions, PV) == [vote] * len(own_votes(actions, PV)) and own_votes(actions)
    assert (h.core.round, h.core.step) == (0, Step.PREVOTE)


def test_replay_rebuilds_lock_and_valid_value():
    h = Harness()
    b, _ = h.lock_on_round0()
    h.restore()
    assert h.core.locked == (0, b.id()) and h.core.valid == (0, b.id())
    assert (h.core.round, h.core.step) == (0, Step.PRECOMMIT)
    # and the lock still binds: a fresh other block in round 1 gets nil
    h.votes(h.others(), PC, 0, NIL)
    h.timeout(0, Step.PRECOMMIT)
    c = h.make_block(txs=(b"c",), proposer=h.core.valset.proposer_index(1))
    (pv,) = own_votes(h.propose(1, c), PV)
    assert pv.is_nil


def test_signed_vote_stands_even_if_inputs_were_lost():
    """Only our own nil prevote survived; a proposal arriving after restart gets no second vote."""
    h = Harness()
    h.start()
    (nil_vote,) = own_votes(h.timeout(0, Step.PROPOSE), PV)
    own = [r for r in h.records if isinstance(record_event(r), VoteReceived)
           and record_event(r).vote.validator_address == h.signers[h.me].address]
    h.restore(records=own)
    assert h.core.step == Step.PROPOSE  # the timeout record was "lost"
    out = h.propose(0, h.make_block())
    assert own_votes(out, PV) == [nil_vote]  # the same signature, not a vote for the block
    assert h.core.stats["kept_presigned"] == 1


def test_lost_inputs_cannot_unlock_a_signed_precommit():
    h = Harness()
    b, _ = h.lock_on_round0()
    (pc,) = [v for v in own_votes(h.log, PC)]
    own = [r for r in h.records if isinstance(record_event(r), VoteReceived)
           and record_event(r).vote.validator_address == h.signers[h.me].address]
    h.restore(records=own)
    # replaying our own prevote/precommit alone does not re-create the polka...
    h.propose(0, b)
    out = h.votes(h.others(), PV, 0, NIL)  # a nil polka
    # ...the core wants a nil precommit now, but re-sends what it signed and keeps the lock
    assert own_votes(out, PC) == [pc]
    assert h.core.locked == (0, b.id())


def test_proposer_reuses_logged_proposal_after_crash():
    me = Harness().valset.proposer_index(0)
    h = Harness(me=me)
    (first,) = own_proposals(h.start())
    # after the restart the mempool holds other transactions
    actions = h.restore(app=TxApp([b"different"]))
    props = own_proposals(actions)
    assert props and all(p == first for p in props)


def test_restore_skips_committed_heights_and_redecides_unstored_block():
    h = Harness()
    b, _ = h.lock_on_round0()
    genesis = h.core.state
    out = h.votes(h.others()[:2], PC, 0, b.id())
    (cb,) = commits(out)
    records = list(h.records)
    # crash before the CommitBlock ran: the block is not stored, the state is genesis
    h.core = type(h.core)(h.params, genesis, h.app, h.signers[h.me])
    actions = h.restore(records=records)
    (again,) = commits(actions)
    assert again.block == b and again.commit.block_id == b.id()
    # crash after it ran: the state is at height 1 and nothing of height 1 replays
    h.core = type(h.core)(h.params, cb.state, h.app, h.signers[h.me])
    actions = h.restore(records=records)
    assert commits(actions) == [] and h.core.height == 2


def test_unreadable_record_halts_restore():
    h = Harness()
    with pytest.raises(InvariantError):
        h.restore(records=[b"\x93\x01\x01"])


def test_every_own_broadcast_is_preceded_by_its_persist():
    h = Harness(me=Harness().valset.proposer_index(0))
    out = h.start()
    out += h.votes(h.others()[:2], PV, 0, own_proposals(out)[0].block.id())
    persisted = set()
    for a in out:
        if isinstance(a, Persist):
            persisted.add(a.record)
        elif isinstance(a, Broadcast):
            m = a.message
            rec = (event_record(VoteReceived(vote=m.vote, now_ms=NOW)) if hasattr(m, "vote")
                   else None)
            if rec is not None:
                assert rec in persisted
            else:
                assert any(record_event(r).__class__.__name__ == "ProposalReceived"
                           for r in persisted)


def test_vote_signed_during_replay_is_persisted_before_it_is_sent():
    """Crash after the proposal was logged but before our prevote was: the replay signs
    the prevote afresh, so restore must persist it before sending it (and a second
    crash then finds it in the WAL)."""
    h = Harness()
    h.start()
    out = h.propose(0, h.make_block())
    persists = [a.record for a in out if isinstance(a, Persist)]
    assert len(persists) == 2  # the proposal, then our prevote
    records = persists[:1]
    actions = h.restore(records=records)
    kinds = [(type(a).__name__, a) for a in actions if isinstance(a, (Persist, Broadcast))]
    (vote,) = set(own_votes(actions, PV))
    persist_at = next(i for i, (k, a) in enumerate(kinds)
                      if k == "Persist" and record_event(a.record) == VoteReceived(
                          vote=vote, now_ms=record_event(a.record).now_ms))
    send_at = next(i for i, (k, a) in enumerate(kinds) if k == "Broadcast")
    assert persist_at < send_at
    # second crash: the WAL now holds the prevote, which the replay re-uses
    wal = records + [a.record for a in actions if isinstance(a, Persist)]
    again = h.restore(records=wal)
    assert not [a for a in again if isinstance(a, Persist)]
    assert set(own_votes(again, PV)) == {vote}
    assert (h.core.round, h.core.step) == (0, Step.PREVOTE)
