"""Vote tallies for one height: per (round, type), power per block id.

Each validator has at most one counted vote per (round, type); a second,
different one is equivocation and is reported by the core, never counted.
"""

from __future__ import annotations

from .validators import ValidatorSet
from .vote import Vote, VoteType


class RoundVotes:
    """The prevotes or precommits of one round.

    ``votes`` holds each validator's first vote; only those count towards
    ``total`` (power that voted at all). A conflicting vote of an equivocating
    validator is also counted for its block when someone vouches that the
    block has +2/3 (a proposal's proof-of-lock), as CometBFT does on a peer's
    maj23 claim: otherwise which of a faulty node's votes arrived first could
    stop a node from ever seeing a polka that really exists. Counting it is
    safe: +2/3 of distinct signers for one block is what a quorum certificate
    is, whichever other votes those signers also sent.
    """

    __slots__ = ("extra", "power_by_block", "total", "votes")

    def __init__(self) -> None:
        self.votes: dict[int, Vote] = {}
        self.power_by_block: dict[bytes, int] = {}
        self.total = 0
        self.extra: dict[bytes, dict[int, Vote]] = {}

    def add_conflicting(self, vote: Vote, power: int) -> bool:
        """Count an equivocator's second vote for its (vouched-for) block; True if new."""
        first = self.votes.get(vote.validator_index)
        if first is None or first.block_id == vote.block_id:
            return False
        extra = self.extra.setdefault(vote.block_id, {})
        if vote.validator_index in extra:
            return False
        extra[vote.validator_index] = vote
        self.power_by_block[vote.block_id] = self.power_by_block.get(vote.block_id, 0) + power
        return True

    def vote_for(self, index: int, block_id: bytes) -> Vote | None:
        """Validator ``index``'s vote for ``block_id`` (first or vouched-for), if any."""
        v = self.votes.get(index)
        if v is not None and v.block_id == block_id:
            return v
        return self.extra.get(block_id, {}).get(index)

    def add(self, vote: Vote, power: int) -> None:
        """Count ``vote`` (the caller checked it is the validator's first for this step)."""
        self.votes[vote.validator_index] = vote
        self.power_by_block[vote.block_id] = self.power_by_block.get(vote.block_id, 0) + power
        self.total += power

    def power_for(self, block_id: bytes) -> int:
        return self.power_by_block.get(block_id, 0)

    def votes_for(self, block_id: bytes, n: int) -> tuple[Vote, ...]:
        """The votes for ``block_id`` in validator order (a polka to ship with a proposal)."""
        return tuple(v for v in (self.vote_for(i, block_id) for i in range(n)) if v is not None)

    def quorum_block(self, valset: ValidatorSet) -> bytes | None:
        """The block id (possibly nil = b"") with +2/3 of the power, if any."""
        for block_id, power in self.power_by_block.items():
            if valset.has_two_thirds(power):
                return block_id
        return None


class HeightVotes:
    """All tallies of a height, created on demand."""

    __slots__ = ("_rounds",)

    def __init__(self) -> None:
        self._rounds: dict[tuple[int, VoteType], RoundVotes] = {}

    def get(self, round: int, vote_type: VoteType) -> RoundVotes:
        key = (round, vote_type)
        rv = self._rounds.get(key)
        if rv is None:
            rv = self._rounds[key] = RoundVotes()
        return rv

    def rounds(self) -> set[int]:
        return {r for r, _ in self._rounds}

    def senders(self, round: int) -> set[int]:
        """Indexes of validators with any vote in ``round``."""
        out: set[int] = set()
        for t in VoteType:
            rv = self._rounds.get((round, t))
            if rv is not None:
                out.update(rv.votes)
        return out
