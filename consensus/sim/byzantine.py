"""Byzantine behaviours, injected as rewrites of a faulty node's outgoing messages.

A Byzantine node runs the real core (so it keeps up with the chain and
knows what honest nodes expect), but every message it would send passes
through its strategy, which decides what each peer actually receives. All
signatures are real: a strategy signs with the faulty validator's key.

* :class:`Equivocate` sends its real vote to some peers and a conflicting
  one to the others, and likewise two different proposals.
* :class:`RandomVotes` sends each peer a vote for a random block, nil, or
  the real value.
* :class:`Silent` sends nothing (a crash that never recovers).
* :class:`BadBlocks` proposes blocks the application must refuse (a foreign
  transaction) and otherwise votes like its core; the validity check after
  the run would catch such a block being committed.
* :class:`SplitBrain` is a *colluding* adversary shared by all faulty nodes:
  it partitions the honest nodes into two camps and, in every round a faulty
  node proposes, shows each camp a different block and votes for each
  camp's block towards that camp. With 1/3 or more faulty power this breaks
  agreement (the checker must catch it); below 1/3 it must not.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Protocol

from ..block import Block
from ..crypto import Signer
from ..merkle import txs_root
from ..messages import Message, ProposalMessage, VoteMessage
from ..vote import NIL, Proposal, Vote


class Strategy(Protocol):
    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        """What faulty node ``index`` really sends when its core broadcasts ``msg``."""
        ...


def _alt_block(block: Block) -> Block:
    """A different, equally valid block: same contents, time one millisecond later."""
    header = replace(block.header, time_ms=block.header.time_ms + 1)
    return Block(header=header, txs=block.txs, last_commit=block.last_commit)


def _resign_vote(signer: Signer, chain_id: str, v: Vote, block_id: bytes) -> Vote:
    return Vote.create(signer, chain_id, type=v.type, height=v.height, round=v.round,
                       block_id=block_id, validator_index=v.validator_index)


def _alt_proposal(signer: Signer, chain_id: str, msg: ProposalMessage) -> ProposalMessage:
    block = _alt_block(msg.block)
    p = msg.proposal
    prop = Proposal.create(signer, chain_id, height=p.height, round=p.round, pol_round=-1,
                           block_id=block.id())
    return ProposalMessage(proposal=prop, block=block)


class Silent:
    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        return []


class BadBlocks:
    def __init__(self, signer: Signer, chain_id: str) -> None:
        self.signer, self.chain_id = signer, chain_id

    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        if isinstance(msg, ProposalMessage):
            b = msg.block
            txs = (*b.txs, b"not-an-app-transaction")
            header = replace(b.header, txs_root=txs_root(txs))
            bad = Block(header=header, txs=txs, last_commit=b.last_commit)
            p = msg.proposal
            prop = Proposal.create(self.signer, self.chain_id, height=p.height, round=p.round,
                                   pol_round=-1, block_id=bad.id())
            msg = ProposalMessage(proposal=prop, block=bad)
        return [(p, msg) for p in peers]


class Equivocate:
    def __init__(self, signer: Signer, chain_id: str, rng: random.Random) -> None:
        self.signer, self.chain_id, self.rng = signer, chain_id, rng

    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        if isinstance(msg, VoteMessage):
            v = msg.vote
            other = self.rng.randbytes(32) if v.is_nil else NIL
            alt: Message = VoteMessage(vote=_resign_vote(self.signer, self.chain_id, v, other))
        else:
            alt = _alt_proposal(self.signer, self.chain_id, msg)
        picks = set(self.rng.sample(peers, len(peers) // 2))
        return [(p, alt if p in picks else msg) for p in peers]


class RandomVotes:
    def __init__(self, signer: Signer, chain_id: str, rng: random.Random) -> None:
        self.signer, self.chain_id, self.rng = signer, chain_id, rng

    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        if not isinstance(msg, VoteMessage):
            return [(p, msg) for p in peers]
        out: list[tuple[int, Message]] = []
        for p in peers:
            choice = self.rng.randrange(3)
            if choice == 0:
                out.append((p, msg))
            else:
                bid = NIL if choice == 1 else self.rng.randbytes(32)
                out.append((p, VoteMessage(vote=_resign_vote(self.signer, self.chain_id,
                                                            msg.vote, bid))))
        return out


class SplitBrain:
    """One adversary controlling every faulty node (see module docstring)."""

    def __init__(self, signers: dict[int, Signer], chain_id: str, camp_a: set[int],
                 camp_b: set[int]) -> None:
        self.signers, self.chain_id = signers, chain_id
        self.camp_a, self.camp_b = camp_a, camp_b
        self.forks: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    def outgoing(self, index: int, msg: Message, peers: list[int]) -> list[tuple[int, Message]]:
        signer = self.signers[index]
        if isinstance(msg, ProposalMessage):
            p = msg.proposal
            alt = _alt_proposal(signer, self.chain_id, msg)
            self.forks[(p.height, p.round)] = (p.block_id, alt.proposal.block_id)
            return [(q, alt if q in self.camp_b else msg) for q in peers]
        v = msg.vote
        fork = self.forks.get((v.height, v.round))
        if fork is None:
            return [(q, msg) for q in peers]
        va = VoteMessage(vote=_resign_vote(signer, self.chain_id, v, fork[0]))
        vb = VoteMessage(vote=_resign_vote(signer, self.chain_id, v, fork[1]))
        return [(q, vb if q in self.camp_b else va) for q in peers]


STRATEGIES = ("equivocate", "random", "silent", "split", "badblocks", "mixed")
