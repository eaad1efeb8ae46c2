"""The consensus wire messages and their envelope.

Two messages travel between validators: a :class:`ProposalMessage` (the
signed proposal, the full block, and, when the proposal re-proposes a value
locked in an earlier round, the prevotes of that polka) and a
:class:`VoteMessage`. Shipping the polka with the proposal stands in for
CometBFT's vote gossip of earlier rounds: a node that missed those prevotes
before the network stabilised can still accept the re-proposal (Algorithm 1,
line 28) without a separate request.

Envelope: ``[tag, ...fields]`` with tag 1 = proposal, 2 = vote.
"""

from __future__ import annotations

from dataclasses import dataclass

from .block import MAX_BLOCK_BYTES, Block
from .encoding import DecodeError, Value, decode, encode, expect_int, expect_list
from .errors import ConsensusMisuseError
from .vote import Proposal, Vote, VoteType

TAG_PROPOSAL = 1
TAG_VOTE = 2
MAX_POL_VOTES = 1000
MAX_MESSAGE_BYTES = MAX_BLOCK_BYTES + 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalMessage:
    proposal: Proposal
    block: Block
    pol_votes: tuple[Vote, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.proposal, Proposal) or not isinstance(self.block, Block):
            raise ConsensusMisuseError("proposal message needs a Proposal and a Block")
        if not isinstance(self.pol_votes, tuple):
            raise ConsensusMisuseError("pol_votes must be a tuple")
        for v in self.pol_votes:
            if not isinstance(v, Vote) or v.type != VoteType.PREVOTE \
                    or v.height != self.proposal.height or v.round != self.proposal.pol_round \
                    or v.block_id != self.proposal.block_id:
                raise ConsensusMisuseError("pol_votes must be prevotes for the proposal's POL")

    def to_value(self) -> list[Value]:
        return [TAG_PROPOSAL, self.proposal.to_value(), self.block.to_value(),
                [v.to_value() for v in self.pol_votes]]


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteMessage:
    vote: Vote

    def __post_init__(self) -> None:
        if not isinstance(self.vote, Vote):
            raise ConsensusMisuseError("vote message needs a Vote")

    def to_value(self) -> list[Value]:
        return [TAG_VOTE, self.vote.to_value()]


Message = ProposalMessage | VoteMessage


def encode_message(msg: Message) -> bytes:
    return encode(msg.to_value())


def message_from_value(value: Value) -> Message:
    """Parse a decoded envelope; raise only :class:`DecodeError`."""
    f = expect_list(value, what="message", max_length=4)
    if not f:
        raise DecodeError("message: empty")
    tag = expect_int(f[0], what="message.tag", lo=1, hi=2)
    try:
        if tag == TAG_VOTE:
            expect_list(f, 2, what="vote message")
            return VoteMessage(vote=Vote.from_value(f[1]))
        expect_list(f, 4, what="proposal message")
        pol = expect_list(f[3], what="pol_votes", max_length=MAX_POL_VOTES)
        return ProposalMessage(proposal=Proposal.from_value(f[1]), block=Block.from_value(f[2]),
                               pol_votes=tuple(Vote.from_value(v) for v in pol))
    except ConsensusMisuseError as exc:
        raise DecodeError(f"message: {exc}") from None


def decode_message(data: bytes, max_size: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode untrusted bytes into a message; raise only :class:`DecodeError`."""
    return message_from_value(decode(data, max_size))
