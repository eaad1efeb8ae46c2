"""Votes and proposals: the two messages validators sign during a round.

Both are frozen, slotted dataclasses that validate their fields on
construction, so an invalid one cannot exist in memory; ``decode`` turns
untrusted bytes into one or raises :class:`DecodeError`. Signing is
domain-separated (``oml/vote/v1``, ``oml/proposal/v1``) and bound to the
chain id through :func:`consensus.crypto.sign_bytes`, so a vote can never be
replayed as a proposal, a transaction or a vote on another chain.

The signed body of a vote is ``[type, height, round, block_id]``: who signed
is given by the key, and where it sits in the validator set (index, address)
is routing data that :meth:`ValidatorSet.verify_vote` checks against the key.
A nil vote carries an empty ``block_id``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .crypto import ADDRESS_SIZE, SIGNATURE_SIZE, Signer, verify
from .encoding import DecodeError, Value, decode, encode, expect_bytes, expect_int, expect_list
from .errors import ConsensusMisuseError

VOTE_DOMAIN = b"oml/vote/v1"
PROPOSAL_DOMAIN = b"oml/proposal/v1"
HASH_SIZE = 32
#: Nil block id (a vote for "no block").
NIL = b""
#: Upper bound of a round number; rounds this high mean something is badly wrong.
MAX_ROUND = 2**31 - 1
MAX_VOTE_BYTES = 256
MAX_PROPOSAL_BYTES = 256


class VoteType(enum.IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


def _check_block_id(block_id: bytes, *, allow_nil: bool) -> None:
    if not isinstance(block_id, bytes):
        raise ConsensusMisuseError("block_id must be bytes")
    if block_id == NIL and allow_nil:
        return
    if len(block_id) != HASH_SIZE:
        nil = " or empty" if allow_nil else ""
        raise ConsensusMisuseError(f"block_id must be {HASH_SIZE} bytes{nil}")


def _check_hr(height: int, round: int) -> None:
    if isinstance(height, bool) or not isinstance(height, int) or not 1 <= height < 2**63:
        raise ConsensusMisuseError(f"height must be >= 1, got {height!r}")
    if isinstance(round, bool) or not isinstance(round, int) or not 0 <= round <= MAX_ROUND:
        raise ConsensusMisuseError(f"round out of range: {round!r}")


def vote_sign_body(vote_type: VoteType, height: int, round: int, block_id: bytes) -> bytes:
    """The body (before domain and chain id) that a vote's signature covers."""
    return encode([int(vote_type), height, round, block_id])


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """A signed prevote or precommit for ``block_id`` (empty = nil) at height/round."""

    type: VoteType
    height: int
    round: int
    block_id: bytes
    validator_address: bytes
    validator_index: int
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.type, VoteType):
            raise ConsensusMisuseError(f"vote type must be a VoteType, got {self.type!r}")
        _check_hr(self.height, self.round)
        _check_block_id(self.block_id, allow_nil=True)
        address = self.validator_address
        if not isinstance(address, bytes) or len(address) != ADDRESS_SIZE:
            raise ConsensusMisuseError("validator_address must be 20 bytes")
        if isinstance(self.validator_index, bool) or not isinstance(self.validator_index, int) \
                or not 0 <= self.validator_index < 2**16:
            raise ConsensusMisuseError("validator_index out of range")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ConsensusMisuseError("signature must be 64 bytes")

    @property
    def is_nil(self) -> bool:
        return self.block_id == NIL

    def sign_body(self) -> bytes:
        return vote_sign_body(self.type, self.height, self.round, self.block_id)

    def verify_signature(self, chain_id: str, pub_key: bytes) -> bool:
        """True if ``pub_key`` signed this vote on ``chain_id`` (no set membership check)."""
        return verify(pub_key, VOTE_DOMAIN, chain_id, self.sign_body(), self.signature)

    @classmethod
    def create(cls, signer: Signer, chain_id: str, *, type: VoteType, height: int, round: int,
               block_id: bytes, validator_index: int) -> Vote:
        """Sign a new vote with ``signer``."""
        body = vote_sign_body(type, height, round, block_id)
        return cls(type=type, height=height, round=round, block_id=block_id,
                   validator_address=signer.address, validator_index=validator_index,
                   signature=signer.sign(VOTE_DOMAIN, chain_id, body))

    def to_value(self) -> list[Value]:
        return [int(self.type), self.height, self.round, self.block_id, self.validator_address,
                self.validator_index, self.signature]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> Vote:
        f = expect_list(value, 7, what="vote")
        t = expect_int(f[0], what="vote.type", lo=1, hi=2)
        block_id = expect_bytes(f[3], what="vote.block_id", max_size=HASH_SIZE)
        if block_id and len(block_id) != HASH_SIZE:
            raise DecodeError("vote.block_id: must be empty or 32 bytes")
        return cls(type=VoteType(t),
                   height=expect_int(f[1], what="vote.height", lo=1, hi=2**63 - 1),
                   round=expect_int(f[2], what="vote.round", hi=MAX_ROUND),
                   block_id=block_id,
                   validator_address=expect_bytes(f[4], what="vote.validator_address",
                                                  size=ADDRESS_SIZE),
                   validator_index=expect_int(f[5], what="vote.validator_index", hi=2**16 - 1),
                   signature=expect_bytes(f[6], what="vote.signature", size=SIGNATURE_SIZE))

    @classmethod
    def decode(cls, data: bytes) -> Vote:
        """Parse untrusted bytes; raise only :class:`DecodeError`."""
        try:
            return cls.from_value(decode(data, MAX_VOTE_BYTES))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"vote: {exc}") from None


def proposal_sign_body(height: int, round: int, pol_round: int, block_id: bytes) -> bytes:
    """The body that a proposal's signature covers."""
    return encode([height, round, pol_round, block_id])


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """The round's proposer vouching for ``block_id``.

    ``pol_round`` is the round of the proof-of-lock (polka) the proposer had
    for this block when it re-proposes its valid value, or -1 for a fresh
    block (Algorithm 1's ``validRound``). The proposer is not named: it is
    whoever the validator set designates for (height, round).
    """

    height: int
    round: int
    pol_round: int
    block_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_hr(self.height, self.round)
        if isinstance(self.pol_round, bool) or not isinstance(self.pol_round, int) \
                or not -1 <= self.pol_round < self.round:
            raise ConsensusMisuseError(f"pol_round must be in [-1, round), got {self.pol_round!r}")
        _check_block_id(self.block_id, allow_nil=False)
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise ConsensusMisuseError("signature must be 64 bytes")

    def sign_body(self) -> bytes:
        return proposal_sign_body(self.height, self.round, self.pol_round, self.block_id)

    def verify_signature(self, chain_id: str, pub_key: bytes) -> bool:
        return verify(pub_key, PROPOSAL_DOMAIN, chain_id, self.sign_body(), self.signature)

    @classmethod
    def create(cls, signer: Signer, chain_id: str, *, height: int, round: int, pol_round: int,
               block_id: bytes) -> Proposal:
        body = proposal_sign_body(height, round, pol_round, block_id)
        return cls(height=height, round=round, pol_round=pol_round, block_id=block_id,
                   signature=signer.sign(PROPOSAL_DOMAIN, chain_id, body))

    def to_value(self) -> list[Value]:
        return [self.height, self.round, self.pol_round, self.block_id, self.signature]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> Proposal:
        f = expect_list(value, 5, what="proposal")
        height = expect_int(f[0], what="proposal.height", lo=1, hi=2**63 - 1)
        round = expect_int(f[1], what="proposal.round", hi=MAX_ROUND)
        pol_round = expect_int(f[2], what="proposal.pol_round", lo=-1, hi=MAX_ROUND)
        if pol_round >= round:
            raise DecodeError("proposal.pol_round: must be below round")
        return cls(height=height, round=round, pol_round=pol_round,
                   block_id=expect_bytes(f[3], what="proposal.block_id", size=HASH_SIZE),
                   signature=expect_bytes(f[4], what="proposal.signature", size=SIGNATURE_SIZE))

    @classmethod
    def decode(cls, data: bytes) -> Proposal:
        """Parse untrusted bytes; raise only :class:`DecodeError`."""
        try:
            return cls.from_value(decode(data, MAX_PROPOSAL_BYTES))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"proposal: {exc}") from None

