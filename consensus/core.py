"""Tendermint consensus as a sans-IO state machine (Algorithm 1 of
"The latest gossip on BFT consensus", Buchman, Kwon, Milosevic, 2018).

``Core.handle(event) -> list[Action]``: the core never reads a clock, a
socket or a disk. Every input is either logged (``Persist``) before the
actions it causes, or ignored; so replaying the WAL through the same handler
(:meth:`Core.restore`) rebuilds the exact state, locks included.

The upon-rules are re-evaluated after every accepted input (:meth:`_advance`),
each guarded by (height, round, step) and by a "first time" flag where the
paper has one; comments give the paper's line numbers. The departures from
the paper (all CometBFT's: polka shipped with re-proposals, re-sending own
messages, block sync requests, next-height buffering, the signing log) are
explained in docs/consensus.md.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from .app import Application
from .block import Block, Commit
from .crypto import Signer
from .errors import ConsensusMisuseError, InvalidMessageError
from .events import (
    Action,
    Broadcast,
    CommitBlock,
    CommittedBlockReceived,
    Event,
    Persist,
    ProposalReceived,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    Start,
    Step,
    TimeoutFired,
    TxsAvailable,
    VoteReceived,
    WaitForTxs,
)
from .evidence import DuplicateVoteEvidence
from .messages import ProposalMessage, VoteMessage
from .signlog import VOTE_STEP, SignLog, vote_key
from .state import ChainState, ConsensusParams
from .validators import ValidatorSet, verify_commit
from .validity import build_block, check_block, is_timely, make_proposal
from .vote import NIL, Vote, VoteType
from .voteset import HeightVotes, RoundVotes
from .wal_api import event_record, replay_events


class Core:
    """One validator's (or a full node's) consensus state machine.

    Args:
        params: timeouts and limits.
        state: the committed chain the next height builds on.
        app: the application (see :mod:`consensus.app`).
        signer: this node's validator key; None for a node that only follows.
    """

    def __init__(self, params: ConsensusParams, state: ChainState, app: Application,
                 signer: Signer | None = None) -> None:
        self.params = params
        self.app = app
        self.signer = signer
        self.chain_id = state.chain_id
        self.stats: collections.Counter[str] = collections.Counter()
        #: the reason the last rejected input was rejected (for logs and tests)
        self.last_rejection: str | None = None
        self._out: list[Action] = []
        self._now = 0
        self._started = False
        self._replaying = False
        self._signlog = SignLog()
        self._future: list[Event] = []
        self._last_sync_request_ms: int | None = None
        # Whether the next height's block must commit a new app hash (see
        # _enter_round0): true after a block with transactions, and after a start
        # (we do not know what the last block held).
        self._proof_block_due = True
        self._reset_height(state)

    # ------------------------------------------------------------------ public

    def handle(self, event: Event) -> list[Action]:
        """Feed one input; return the actions to execute, in order.

        Bad input from peers is dropped (``stats['rejected']``, ``last_rejection``);
        it never raises and never changes state. Raises:
            ConsensusMisuseError: the driver misused the core (e.g. Start twice).
        """
        self._out = []
        self._now = event.now_ms
        if isinstance(event, Start):
            if self._started:
                raise ConsensusMisuseError("Start handled twice")
            self._started = True
            self._enter_height()
        elif not self._started:
            raise ConsensusMisuseError("handle(Start) first")
        elif isinstance(event, VoteReceived):
            self._on_vote(event)
        elif isinstance(event, ProposalReceived):
            self._on_proposal(event)
        elif isinstance(event, TimeoutFired):
            self._on_timeout(event)
        elif isinstance(event, CommittedBlockReceived):
            self._on_committed_block(event)
        elif isinstance(event, TxsAvailable):
            self._on_txs_available(event)
        else:
            raise ConsensusMisuseError(f"unknown event {type(event).__name__}")
        out, self._out = self._out, []
        return out

    @classmethod
    def restore(cls, params: ConsensusParams, state: ChainState, app: Application,
                signer: Signer | None, records: Iterable[bytes],
                now_ms: int) -> tuple[Core, list[Action]]:
        """Rebuild a core after a restart from the committed ``state`` and the WAL.

        Records of heights at or below ``state.height`` are skipped (their blocks
        are stored). The rest are replayed through :meth:`handle`; what this node
        signed before the crash is registered first, so the replay re-uses those
        proposals and votes rather than signing new ones.

        Returns:
            The core, started, and the actions to execute now, in order. Inputs
            already in the WAL are not persisted again, but a proposal or vote
            the replay had to sign afresh (the crash came before it was logged)
            is, before it is sent. The node's own messages of the current height
            are re-broadcast at the end, since a crash may have come between
            persisting and sending them.
        Raises:
            InvariantError: a record does not parse (the WAL checks integrity,
                so this is a bug or a disk that lied; do not sign anything).
        """
        events = replay_events(records, above_height=state.height)
        core = cls(params, state, app, signer)
        if signer is not None:
            for ev in events:
                core._signlog.register_presigned(ev, signer, state.chain_id)
        core._replaying = True
        actions = core.handle(Start(now_ms=now_ms))
        for ev in events:
            actions.extend(core.handle(ev))
        core._replaying = False
        actions.extend(Broadcast(m) for m in core._signlog.messages_at(core.height))
        return core, actions

    @property
    def state(self) -> ChainState:
        """The committed chain state the current height builds on."""
        return self._state

    @property
    def locked(self) -> tuple[int, bytes | None]:
        """(locked_round, locked block id), (-1, None) when unlocked."""
        return self.locked_round, self.locked_id

    @property
    def valid(self) -> tuple[int, bytes | None]:
        return self.valid_round, self.valid_id

    def proposer_index(self, round: int) -> int:
        return self.valset.proposer_index(round)

    # ------------------------------------------------------------ height setup

    def _reset_height(self, state: ChainState) -> None:
        self._state = state
        self.valset: ValidatorSet = state.validators
        self.height = state.height + 1
        self.round = 0
        self.step = Step.NEW_HEIGHT
        self.locked_round, self.locked_id = -1, None
        self.valid_round, self.valid_id = -1, None
        self._votes = HeightVotes()
        self._proposals: dict[int, ProposalMessage] = {}
        self._blocks: dict[bytes, Block] = {}
        self._validity: dict[bytes, InvalidMessageError | None] = {}
        self._flags: set[tuple[str, int]] = set()
        self._precommit_quorums: set[int] = set()
        self._evidence: set[tuple[int, int, int]] = set()
        self._seen_later_height = False
        self._my_index = None if self.signer is None else self.valset.index_of(self.signer.address)
        self._signlog.prune_below(self.height)

    def _enter_height(self) -> None:
        h = self.height
        self._schedule(h, 0, Step.GOSSIP, self.params.gossip_interval_ms)
        if self.params.timeout_commit_ms > 0:
            self._schedule(h, 0, Step.NEW_HEIGHT, self.params.timeout_commit_ms)
        else:
            self._enter_round0()
        buffered, self._future = self._future, []
        for ev in buffered:
            if self.height != h:
                break
            if isinstance(ev, VoteReceived):
                self._on_vote(ev)
            elif isinstance(ev, ProposalReceived):
                self._on_proposal(ev)
        if self.height == h:
            self._advance()

    # ------------------------------------------------------------------ inputs

    def _reject(self, why: str) -> None:
        self.stats["rejected"] += 1
        self.last_rejection = why

    def _log(self, event: Event, *, fresh: bool = False) -> None:
        """Persist ``event``. A replay logs only what is ``fresh``: a proposal or vote
        signed during the replay itself (the crash came before it reached the WAL)."""
        if fresh or not self._replaying:
            self._out.append(Persist(event_record(event)))

    def _schedule(self, height: int, round: int, step: Step, delay_ms: int) -> None:
        self._out.append(ScheduleTimeout(height, round, step, delay_ms))

    def _other_height(self, event: Event, height: int) -> None:
        """A message for another height: buffer the next one, ask for blocks if far behind."""
        if height <= self.height:
            return  # late message for a finished height
        self._seen_later_height = True
        if height == self.height + 1:
            if len(self._future) < 8 * len(self.valset) + 8:
                self._future.append(event)
            return
        self._request_sync()

    def _request_sync(self) -> None:
        last = self._last_sync_request_ms
        if last is None or self._now - last >= self.params.gossip_interval_ms:
            self._last_sync_request_ms = self._now
            self._out.append(RequestSync(self.height))

    def _on_vote(self, ev: VoteReceived) -> None:
        v = ev.vote
        if v.height != self.height:
            self._other_height(ev, v.height)
            return
        if v.round > self.round + self.params.max_rounds_ahead:
            self._reject("vote too many rounds ahead")
            return
        if self._add_vote(v, ev):
            self._advance()

    def _add_vote(self, v: Vote, ev: Event | None, vouched: bytes | None = None,
                  fresh: bool = False) -> bool:
        """Verify and count a vote; log ``ev`` first. True if it was new.

        ``vouched`` is the block id a proposal's proof-of-lock claims +2/3 for;
        a conflicting vote for it is counted too (see :class:`RoundVotes`).
        """
        rv = self._votes.get(v.round, v.type)
        existing = rv.votes.get(v.validator_index)
        if existing == v:
            return False
        own = self._signlog.get(vote_key(v)) == v
        if not own:
            try:
                self.valset.verify_vote(self.chain_id, v)
            except InvalidMessageError as exc:
                self._reject(str(exc))
                return False
        if existing is not None:
            if existing.block_id != v.block_id:
                # one report per validator and step: a faulty node can sign endless variants
                key = (v.validator_index, v.round, int(v.type))
                if key not in self._evidence:
                    self._evidence.add(key)
                    self.stats["evidence"] += 1
                    self._out.append(ReportEvidence(DuplicateVoteEvidence.from_votes(existing, v)))
                if vouched is not None and v.block_id == vouched \
                        and rv.add_conflicting(v, self.valset.power_at(v.validator_index)):
                    self._note_precommit_quorum(rv, v)
                    return True
            return False
        if ev is not None:
            self._log(ev, fresh=fresh)
        rv.add(v, self.valset.power_at(v.validator_index))
        self._note_precommit_quorum(rv, v)
        return True

    def _note_precommit_quorum(self, rv: RoundVotes, v: Vote) -> None:
        if v.type == VoteType.PRECOMMIT and not v.is_nil \
                and self.valset.has_two_thirds(rv.power_for(v.block_id)):
            self._precommit_quorums.add(v.round)

    def _on_proposal(self, ev: ProposalReceived) -> None:
        if ev.message.proposal.height != self.height:
            self._other_height(ev, ev.message.proposal.height)
        elif self._accept_proposal(ev):
            self._advance()

    def _accept_proposal(self, ev: ProposalReceived, fresh: bool = False) -> bool:
        """Verify and store a proposal for this height; log it first. True if new."""
        msg = ev.message
        p = msg.proposal
        if p.round > self.round + self.params.max_rounds_ahead:
            self._reject("proposal too many rounds ahead")
            return False
        known = self._proposals.get(p.round)
        if known is not None:
            if known != msg:
                self._reject("second proposal for the round")
            return False
        own = self._signlog.get((p.height, p.round, Step.PROPOSE)) == msg
        if not own:
            proposer = self.valset.proposer(p.round)
            if not p.verify_signature(self.chain_id, proposer.pub_key):
                self._reject("proposal not signed by the round's proposer")
                return False
            if msg.block.id() != p.block_id:
                self._reject("proposal block does not match its id")
                return False
        self._log(ev, fresh=fresh)
        for v in msg.pol_votes:
            self._add_vote(v, None, vouched=p.block_id)
        self._proposals[p.round] = msg
        self._blocks[p.block_id] = msg.block
        return True

    def _on_timeout(self, ev: TimeoutFired) -> None:
        if ev.height != self.height:
            return
        r, s = ev.round, ev.step
        if s == Step.GOSSIP:
            # not logged: it changes no state, only re-sends
            self._out.extend(Broadcast(m) for m in self._signlog.messages_at(self.height))
            if self._seen_later_height:
                self._request_sync()
            self._schedule(self.height, 0, Step.GOSSIP, self.params.gossip_interval_ms)
            return
        if s == Step.NEW_HEIGHT:
            if self.step == Step.NEW_HEIGHT and self.round == 0:
                self._log(ev)
                self._enter_round0()
        elif s == Step.WAIT_FOR_TXS:  # the empty-block interval is over
            if self.step == Step.WAIT_FOR_TXS:
                self._log(ev)
                self._start_round(0)
        elif r != self.round:
            return
        elif s == Step.PROPOSE:  # line 57: OnTimeoutPropose
            if self.step == Step.PROPOSE:
                self._log(ev)
                self._prevote(NIL)
        elif s == Step.PREVOTE:  # line 61: OnTimeoutPrevote
            if self.step == Step.PREVOTE:
                self._log(ev)
                self._precommit(NIL)
        elif s == Step.PRECOMMIT:  # line 65: OnTimeoutPrecommit
            self._log(ev)
            self._start_round(r + 1)
        self._advance()

    def _on_txs_available(self, ev: TxsAvailable) -> None:
        """The driver's answer to WaitForTxs: round 0 may go ahead."""
        if ev.height == self.height and self.step == Step.WAIT_FOR_TXS:
            self._log(ev)
            self._start_round(0)
            self._advance()

    def _on_committed_block(self, ev: CommittedBlockReceived) -> None:
        """Block sync: a committed block for our height, proven by +2/3 precommits."""
        b, c = ev.block, ev.commit
        if b.height != self.height:
            return
        bid = b.id()
        try:
            verify_commit(self.chain_id, self.valset, bid, b.height, c)
        except InvalidMessageError as exc:
            self._reject(f"synced block: {exc}")
            return
        if not self._is_valid(b):
            self._reject(f"synced block invalid: {self._validity[bid]}")
            return
        self._blocks[bid] = b
        self._finalize(b, c)

    # ---------------------------------------------------------------- the rules

    def _advance(self) -> None:
        """Apply upon-rules until none fires (each changes step, round or height)."""
        h = self.height
        while self.height == h:
            if self._try_decide():          # line 49
                return
            if self._try_round_skip():      # line 55
                continue
            if not self._round_rules():     # lines 22-47
                return

    def _try_decide(self) -> bool:
        # line 49: upon <PROPOSAL, h, r, v, *> and 2f+1 <PRECOMMIT, h, r, id(v)>, any r
        for r in sorted(self._precommit_quorums):
            rv = self._votes.get(r, VoteType.PRECOMMIT)
            bid = rv.quorum_block(self.valset)
            if not bid:
                continue
            block = self._blocks.get(bid)
            if block is None or not self._is_valid(block):
                continue
            votes = [rv.vote_for(i, bid) for i in range(len(self.valset))]
            sigs = tuple(b"" if v is None else v.signature for v in votes)
            self._finalize(block, Commit(height=self.height, round=r, block_id=bid,
                                         signatures=sigs))
            return True
        return False

    def _try_round_skip(self) -> bool:
        # line 55: upon f+1 <*, h, r, *, *> with r > round_p: StartRound(r)
        best = -1
        for r in self._votes.rounds() | set(self._proposals):
            if r <= self.round or r <= best:
                continue
            senders = self._votes.senders(r)
            if r in self._proposals:
                senders.add(self.valset.proposer_index(r))
            if self.valset.has_one_third(sum(self.valset.power_at(i) for i in senders)):
                best = r
        if best < 0:
            return False
        self._start_round(best)
        return True

    def _round_rules(self) -> bool:
        """Rules about the current round; True if one changed the step or round."""
        r, step = self.round, self.step
        if step == Step.NEW_HEIGHT:
            return False
        if step == Step.WAIT_FOR_TXS:
            # Someone else has work for round 0 (a proposal, or a vote: its
            # sender had transactions or its interval ran out): join it.
            if 0 in self._proposals or self._votes.senders(0):
                self._start_round(0)
                return True
            return False
        prevotes = self._votes.get(r, VoteType.PREVOTE)
        msg = self._proposals.get(r)
        if step == Step.PROPOSE and msg is not None:
            p, block = msg.proposal, msg.block
            if p.pol_round == -1:
                # line 22: fresh proposal
                ok = (self._is_valid(block) and is_timely(block, self._now, r, self.params)
                      and (self.locked_round == -1 or self.locked_id == p.block_id))
                self._prevote(p.block_id if ok else NIL)
                return True
            vr = p.pol_round
            if self.valset.has_two_thirds(self._votes.get(vr, VoteType.PREVOTE)
                                          .power_for(p.block_id)):
                # line 28: re-proposal backed by a polka in round vr < r
                ok = self._is_valid(block) and (self.locked_round <= vr
                                                or self.locked_id == p.block_id)
                self._prevote(p.block_id if ok else NIL)
                return True
        if step >= Step.PREVOTE:
            if step == Step.PREVOTE and ("prevote_any", r) not in self._flags \
                    and self.valset.has_two_thirds(prevotes.total):
                # line 34: 2f+1 prevotes for anything, first time
                self._flags.add(("prevote_any", r))
                self._schedule(self.height, r, Step.PREVOTE, self.params.prevote_timeout(r))
            polka = prevotes.quorum_block(self.valset)
            if polka and ("polka", r) not in self._flags:
                block = self._blocks.get(polka)
                if block is not None and self._is_valid(block):
                    # line 36: polka for a valid block, first time
                    self._flags.add(("polka", r))
                    self.valid_round, self.valid_id = r, polka
                    if step == Step.PREVOTE:
                        self.locked_round, self.locked_id = r, polka
                        self._precommit(polka)
                        return True
            if step == Step.PREVOTE and polka == NIL:
                # line 44: polka for nil
                self._precommit(NIL)
                return True
        if ("precommit_any", r) not in self._flags \
                and self.valset.has_two_thirds(self._votes.get(r, VoteType.PRECOMMIT).total):
            # line 47: 2f+1 precommits for anything, first time
            self._flags.add(("precommit_any", r))
            self._schedule(self.height, r, Step.PRECOMMIT, self.params.precommit_timeout(r))
        return False

    # ------------------------------------------------------------ step changes

    def _enter_round0(self) -> None:
        """Round 0 begins, at once or after waiting for transactions (CometBFT's
        enterNewRound with ``WaitForTxs``); see docs/consensus.md.

        Without an interval, a block after one with transactions (or the first
        after a start) is made at once: its header commits the app hash those
        transactions produced, which would otherwise wait for the next
        transaction. With an interval, the interval's block commits it.
        """
        interval = self.params.create_empty_blocks_interval_ms
        if not self.params.waits_for_txs or (self._proof_block_due and interval == 0):
            self._start_round(0)
            return
        self.step = Step.WAIT_FOR_TXS
        self._out.append(WaitForTxs(self.height))
        if interval > 0:
            self._schedule(self.height, 0, Step.WAIT_FOR_TXS, interval)

    def _start_round(self, r: int) -> None:
        # line 11: StartRound(round)
        self.round, self.step = r, Step.PROPOSE
        self._schedule(self.height, r, Step.PROPOSE, self.params.propose_timeout(r))
        if self._my_index is not None and self.valset.proposer_index(r) == self._my_index:
            self._propose()

    def _propose(self) -> None:
        h, r = self.height, self.round
        msg = self._signlog.get((h, r, Step.PROPOSE))
        fresh = msg is None
        if msg is None:
            if not self._signlog.may_sign((h, r, Step.PROPOSE)):
                return
            assert self.signer is not None
            if self.valid_id is not None:
                # line 15: re-propose the valid value with its polka
                pol = self._votes.get(self.valid_round, VoteType.PREVOTE)
                msg = make_proposal(self.signer, self.chain_id, r, self._blocks[self.valid_id],
                                    self.valid_round,
                                    pol.votes_for(self.valid_id, len(self.valset)))
            else:
                block = build_block(self._state, self.valset, self.app, self.params,
                                    self.signer.address, self._now)
                msg = make_proposal(self.signer, self.chain_id, r, block, -1, ())
            self._signlog.record((h, r, Step.PROPOSE), msg)
        assert isinstance(msg, ProposalMessage)
        # persist and store first, send, and let the caller's _advance prevote
        self._accept_proposal(ProposalReceived(message=msg, now_ms=self._now), fresh=fresh)
        self._out.append(Broadcast(msg))

    def _prevote(self, block_id: bytes) -> None:
        self.step = Step.PREVOTE
        self._vote(VoteType.PREVOTE, block_id)

    def _precommit(self, block_id: bytes) -> None:
        self.step = Step.PRECOMMIT
        self._vote(VoteType.PRECOMMIT, block_id)

    def _vote(self, vote_type: VoteType, block_id: bytes) -> None:
        """Sign (or re-use what we signed before) and send a vote; persist it first."""
        if self._my_index is None:
            return
        key = (self.height, self.round, VOTE_STEP[vote_type])
        vote = self._signlog.get(key)
        fresh = vote is None
        if vote is None:
            if not self._signlog.may_sign(key):
                return
            assert self.signer is not None
            vote = Vote.create(self.signer, self.chain_id, type=vote_type, height=self.height,
                               round=self.round, block_id=block_id,
                               validator_index=self._my_index)
            self._signlog.record(key, vote)
        else:
            assert isinstance(vote, Vote)
            if vote.block_id != block_id:
                # We signed otherwise before a crash: that vote stands. Keep the lock
                # consistent with what others may have seen from us.
                self.stats["kept_presigned"] += 1
                if vote_type == VoteType.PRECOMMIT and not vote.is_nil \
                        and self.locked_round < self.round:
                    self.locked_round, self.locked_id = self.round, vote.block_id
        self._add_vote(vote, VoteReceived(vote=vote, now_ms=self._now), fresh=fresh)
        self._out.append(Broadcast(VoteMessage(vote=vote)))

    def _finalize(self, block: Block, commit: Commit) -> None:
        """Decide ``block``: execute it, hand it to the driver, start the next height."""
        app_hash = self.app.apply_block(block)
        new_state = self._state.next(block, commit, app_hash)
        self._out.append(CommitBlock(block, commit, new_state))
        self.stats["commits"] += 1
        self._proof_block_due = bool(block.txs)
        self._reset_height(new_state)
        self._enter_height()

    # ---------------------------------------------------------------- validity

    def _is_valid(self, block: Block) -> bool:
        """valid(v) of Algorithm 1: header rules against the chain, then the app."""
        bid = block.id()
        if bid in self._validity:
            return self._validity[bid] is None
        try:
            check_block(block, self._state, self.valset, self.params, self.app)
            self._validity[bid] = None
        except InvalidMessageError as exc:
            self._validity[bid] = exc
            self.stats["invalid_blocks"] += 1
        return self._validity[bid] is None

