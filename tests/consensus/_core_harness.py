"""Test harness for the consensus core: one core under test, the other validators scripted.

The core under test is validator ``me``; the test plays every other validator
by signing real proposals and votes with their keys and feeding them in.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from consensus.block import Block, Commit, Header, commit_hash
from consensus.core import Core
from consensus.crypto import PrivateKey, Signer
from consensus.events import (
    Action,
    Broadcast,
    CommitBlock,
    Persist,
    ProposalReceived,
    Start,
    Step,
    TimeoutFired,
    VoteReceived,
)
from consensus.merkle import txs_root
from consensus.messages import ProposalMessage, VoteMessage
from consensus.state import ChainState, ConsensusParams
from consensus.validators import ValidatorSet
from consensus.vote import NIL, Proposal, Vote, VoteType
from consensus.wal_api import record_event

CHAIN = "core-test"
GENESIS_MS = 10_000
NOW = 20_000
PARAMS = ConsensusParams(timeout_propose_ms=1000, timeout_propose_delta_ms=500,
                         timeout_prevote_ms=400, timeout_prevote_delta_ms=100,
                         timeout_precommit_ms=300, timeout_precommit_delta_ms=200,
                         gossip_interval_ms=5_000)


class TxApp:
    """Returns the transactions it is told to; app hash chains the txs root."""

    def __init__(self, txs: list[bytes] | None = None) -> None:
        self.txs = txs if txs is not None else [b"tx-1", b"tx-2"]
        self.applied: list[Block] = []
        self.reject: set[bytes] = set()

    def propose_txs(self, height: int, max_bytes: int) -> list[bytes]:
        return list(self.txs)

    def validate_block(self, block: Block) -> bool | None:
        from consensus.errors import InvalidBlockError
        if b"say-no" in block.txs:
            return False
        if any(tx in self.reject for tx in block.txs):
            raise InvalidBlockError("app rejects a transaction")
        return None

    def apply_block(self, block: Block) -> bytes:
        self.applied.append(block)
        return hashlib.sha256(block.header.app_hash + block.header.txs_root).digest()


def signers_for(n: int) -> list[Signer]:
    return [Signer(PrivateKey(hashlib.sha256(b"core-test-%d" % i).digest())) for i in range(n)]


class Harness:
    def __init__(self, n: int = 4, powers: list[int] | None = None, me: int | None = None,
                 params: ConsensusParams = PARAMS, app: TxApp | None = None) -> None:
        raw = signers_for(n)
        powers = powers or [1] * n
        self.valset = ValidatorSet.from_powers((s.public_key, p) for s, p in zip(raw, powers))
        by_addr = {s.address: s for s in raw}
        self.signers = [by_addr[self.valset.address_at(i)] for i in range(n)]
        if me is None:  # by default, the last to propose: not in rounds 0 .. n-2
            early = {self.valset.proposer_index(r) for r in range(n - 1)}
            me = next(i for i in range(n) if i not in early)
        self.me = me
        self.params = params
        self.app = app or TxApp()
        self.state = ChainState.genesis(CHAIN, GENESIS_MS, self.valset)
        self.core = Core(params, self.state, self.app, self.signers[me])
        self.log: list[Action] = []
        self.records: list[bytes] = []

    # --- driving -----------------------------------------------------------

    def feed(self, event) -> list[Action]:
        actions = self.core.handle(event)
        self.log.extend(actions)
        self.records.extend(a.record for a in actions if isinstance(a, Persist))
        return actions

    def start(self, now: int = NOW) -> list[Action]:
        return self.feed(Start(now_ms=now))

    def others(self, *, exclude: tuple[int, ...] = ()) -> list[int]:
        return [i for i in range(len(self.signers)) if i != self.me and i not in exclude]

    def make_vote(self, i: int, vote_type: VoteType, round: int, block_id: bytes,
                  height: int = 1) -> Vote:
        return Vote.create(self.signers[i], CHAIN, type=vote_type, height=height, round=round,
                           block_id=block_id, validator_index=i)

    def vote(self, i: int, vote_type: VoteType, round: int, block_id: bytes, height: int = 1,
             now: int = NOW) -> list[Action]:
        return self.feed(VoteReceived(vote=self.make_vote(i, vote_type, round, block_id, height),
                                      now_ms=now))

    def votes(self, who: list[int], vote_type: VoteType, round: int, block_id: bytes,
              now: int = NOW) -> list[Action]:
        out: list[Action] = []
        for i in who:
            out += self.vote(i, vote_type, round, block_id, now=now)
        return out

    def make_block(self, txs: tuple[bytes, ...] = (b"tx-1", b"tx-2"), time_ms: int = NOW,
                   proposer: int | None = None, **changes) -> Block:
        st = self.core.state
        header = Header(chain_id=CHAIN, height=st.height + 1, time_ms=time_ms,
                        prev_block_id=st.last_block_id, txs_root=txs_root(txs),
                        app_hash=st.app_hash,
                        proposer_address=self.valset.address_at(
                            self.valset.proposer_index(0) if proposer is None else proposer),
                        validators_hash=self.valset.hash(),
                        last_commit_hash=commit_hash(st.last_commit))
        if changes:
            header = replace(header, **changes)
        return Block(header=header, txs=txs, last_commit=st.last_commit)

    def make_proposal(self, round: int, block: Block, pol_round: int = -1,
                      pol_votes: tuple[Vote, ...] = (), signer: int | None = None,
                      ) -> ProposalMessage:
        i = self.core.valset.proposer_index(round) if signer is None else signer
        p = Proposal.create(self.signers[i], CHAIN, height=block.height, round=round,
                            pol_round=pol_round, block_id=block.id())
        return ProposalMessage(proposal=p, block=block, pol_votes=pol_votes)

    def propose(self, round: int, block: Block, now: int = NOW, **kw) -> list[Action]:
        return self.feed(ProposalReceived(message=self.make_proposal(round, block, **kw),
                                          now_ms=now))

    def lock_on_round0(self) -> tuple[Block, list[Action]]:
        """Round 0: proposal B, polka for B -> the core precommits B and locks on it."""
        self.start()
        b = self.make_block()
        self.propose(0, b)
        return b, self.votes(self.others()[:2], VoteType.PREVOTE, 0, b.id())

    def timeout(self, round: int, step: Step, height: int = 1, now: int = NOW) -> list[Action]:
        return self.feed(TimeoutFired(height=height, round=round, step=step, now_ms=now))

    def restore(self, records: list[bytes] | None = None, app: TxApp | None = None,
                now: int = NOW):
        core, actions = Core.restore(self.params, self.core.state, app or self.app,
                                     self.signers[self.me],
                                     self.records if records is None else records, now)
        self.core = core
        self.log.extend(actions)
        return actions


# --- reading actions ------------------------------------------------------------


def own_votes(actions: list[Action], vote_type: VoteType | None = None) -> list[Vote]:
    out = [a.message.vote for a in actions
           if isinstance(a, Broadcast) and isinstance(a.message, VoteMessage)]
    return [v for v in out if vote_type is None or v.type == vote_type]


def own_proposals(actions: list[Action]) -> list[ProposalMessage]:
    return [a.message for a in actions
            if isinstance(a, Broadcast) and isinstance(a.message, ProposalMessage)]


def commits(actions: list[Action]) -> list[CommitBlock]:
    return [a for a in actions if isinstance(a, CommitBlock)]


def persisted_events(actions: list[Action]) -> list:
    return [record_event(a.record) for a in actions if isinstance(a, Persist)]


def timeouts(actions: list[Action]):
    from consensus.events import ScheduleTimeout
    return [a for a in actions if isinstance(a, ScheduleTimeout)]


__all__ = [
    "CHAIN",
    "NIL",
    "NOW",
    "Commit",
    "Harness",
    "Step",
    "TxApp",
    "VoteType",
    "commits",
    "own_proposals",
    "own_votes",
    "persisted_events",
    "timeouts",
]
