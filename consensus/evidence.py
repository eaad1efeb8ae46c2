"""Evidence that a validator signed two conflicting votes (equivocation).

Two votes conflict when one validator signed both for the same height,
round and type but for different block ids (nil counts as a value). That is
only possible for a faulty validator: an honest one logs every vote before
sending it and never signs a second one for the same step. The pair is kept
in a canonical order (lower block id first) so every node that catches the
same equivocation produces byte-identical evidence, and its hash dedupes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .crypto import sha256
from .encoding import DecodeError, Value, decode, encode, expect_list
from .errors import ConsensusMisuseError, InvalidEvidenceError, InvalidMessageError
from .validators import ValidatorSet
from .vote import Vote

EVIDENCE_DOMAIN = b"oml/evidence/v1\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateVoteEvidence:
    vote_a: Vote
    vote_b: Vote

    def __post_init__(self) -> None:
        a, b = self.vote_a, self.vote_b
        if not isinstance(a, Vote) or not isinstance(b, Vote):
            raise ConsensusMisuseError("evidence needs two votes")
        if (a.type, a.height, a.round, a.validator_address, a.validator_index) != \
                (b.type, b.height, b.round, b.validator_address, b.validator_index):
            raise ConsensusMisuseError("votes are not from one validator for one step")
        if not a.block_id < b.block_id:
            raise ConsensusMisuseError("votes must differ and be ordered by block id")

    @classmethod
    def from_votes(cls, x: Vote, y: Vote) -> DuplicateVoteEvidence:
        """Build evidence from two conflicting votes in either order."""
        a, b = (x, y) if x.block_id < y.block_id else (y, x)
        return cls(vote_a=a, vote_b=b)

    @property
    def height(self) -> int:
        return self.vote_a.height

    @property
    def validator_address(self) -> bytes:
        return self.vote_a.validator_address

    def verify(self, chain_id: str, valset: ValidatorSet) -> None:
        """Check both signatures against the member of ``valset`` the votes name.

        Raises:
            InvalidEvidenceError: a signature is bad or the signer is not in the set.
        """
        try:
            valset.verify_vote(chain_id, self.vote_a)
            valset.verify_vote(chain_id, self.vote_b)
        except InvalidMessageError as exc:
            raise InvalidEvidenceError(f"duplicate vote evidence: {exc}") from None

    def to_value(self) -> list[Value]:
        return [self.vote_a.to_value(), self.vote_b.to_value()]

    def encode(self) -> bytes:
        return encode(self.to_value())

    def hash(self) -> bytes:
        return sha256(EVIDENCE_DOMAIN + self.encode())

    @classmethod
    def from_value(cls, value: Value) -> DuplicateVoteEvidence:
        f = expect_list(value, 2, what="evidence")
        try:
            return cls(vote_a=Vote.from_value(f[0]), vote_b=Vote.from_value(f[1]))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"evidence: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> DuplicateVoteEvidence:
        return cls.from_value(decode(data, 1024))
