"""Validator set: voting power, quorum arithmetic and the proposer rotation.

Proposer selection is CometBFT's weighted round-robin: every step each
validator's priority grows by its power, the highest priority proposes (ties
go to the lower address) and pays back the total power. Over any window a
validator proposes in proportion to its power. Priorities are kept centred
on zero and their spread bounded by ``2 * total_power`` (CometBFT's
``PriorityWindowSizeFactor``) so they never grow without bound.

Indexing: validators are sorted by power (descending) then address, as in
CometBFT, and a validator's index in that order is the index used in votes
and commits. The set's hash commits to (pub_key, power) in that order and
excludes priorities, which change every height.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .block import Commit
from .crypto import PUBKEY_SIZE, address_of, sha256, verify
from .encoding import DecodeError, Value, decode, encode, expect_bytes, expect_int, expect_list
from .errors import ConsensusMisuseError, InvalidCommitError, InvalidMessageError
from .vote import VOTE_DOMAIN, Vote, VoteType, vote_sign_body

#: Like CometBFT's MaxTotalVotingPower: leaves room for priority arithmetic in 64 bits.
MAX_TOTAL_VOTING_POWER = (2**63 - 1) // 8
PRIORITY_WINDOW_FACTOR = 2
MAX_VALIDATORS = 1000
VALSET_HASH_DOMAIN = b"oml/valset/v1\x00"


def _trunc_div(a: int, b: int) -> int:
    """Integer division rounding toward zero (Go semantics), for rescaling priorities."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


@dataclass(frozen=True, slots=True, kw_only=True)
class Validator:
    pub_key: bytes
    power: int
    priority: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.pub_key, bytes) or len(self.pub_key) != PUBKEY_SIZE:
            raise ConsensusMisuseError("validator pub_key must be 32 bytes")
        if isinstance(self.power, bool) or not isinstance(self.power, int) \
                or not 1 <= self.power <= MAX_TOTAL_VOTING_POWER:
            raise ConsensusMisuseError(f"validator power out of range: {self.power!r}")

    @property
    def address(self) -> bytes:
        return address_of(self.pub_key)


class ValidatorSet:
    """An immutable, ordered set of validators with their proposer priorities.

    Use :meth:`from_powers` to build one; :meth:`advanced` returns the set for
    the next height (priorities stepped once), :meth:`proposer` the proposer
    for a round of the height this set belongs to.
    """

    __slots__ = ("_addresses", "_by_address", "_hash", "_proposers", "total_power", "validators")

    def __init__(self, validators: Sequence[Validator]) -> None:
        if not validators:
            raise ConsensusMisuseError("validator set is empty")
        if len(validators) > MAX_VALIDATORS:
            raise ConsensusMisuseError("too many validators")
        ordered = tuple(sorted(validators, key=lambda v: (-v.power, v.address)))
        if list(ordered) != list(validators):
            raise ConsensusMisuseError("validators must be sorted by power desc, then address")
        self.validators: tuple[Validator, ...] = ordered
        self._addresses = tuple(v.address for v in ordered)
        self._by_address = {a: i for i, a in enumerate(self._addresses)}
        if len(self._by_address) != len(ordered):
            raise ConsensusMisuseError("duplicate validator")
        self.total_power = sum(v.power for v in ordered)
        if self.total_power > MAX_TOTAL_VOTING_POWER:
            raise ConsensusMisuseError("total voting power too large")
        self._hash: bytes | None = None
        self._proposers: list[int] = []

    @classmethod
    def from_powers(cls, members: Iterable[tuple[bytes, int]]) -> ValidatorSet:
        """A fresh set (all priorities zero) from (pub_key, power) pairs in any order."""
        vals = [Validator(pub_key=pk, power=p) for pk, p in members]
        return cls(sorted(vals, key=lambda v: (-v.power, v.address)))

    # --- lookups ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self.validators)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and self.validators == other.validators

    def __hash__(self) -> int:
        return hash(self.validators)

    def __repr__(self) -> str:
        return f"ValidatorSet(n={len(self)}, total_power={self.total_power})"

    def index_of(self, address: bytes) -> int | None:
        return self._by_address.get(address)

    def address_at(self, index: int) -> bytes:
        return self._addresses[index]

    def power_at(self, index: int) -> int:
        return self.validators[index].power

    def hash(self) -> bytes:
        """Commitment to members and powers (not priorities), for headers."""
        if self._hash is None:
            body = encode([[v.pub_key, v.power] for v in self.validators])
            self._hash = sha256(VALSET_HASH_DOMAIN + body)
        return self._hash

    # --- quorum arithmetic -----------------------------------------------

    def has_two_thirds(self, power: int) -> bool:
        """``power`` is more than 2/3 of the total (a quorum, "2f+1")."""
        return power * 3 > self.total_power * 2

    def has_one_third(self, power: int) -> bool:
        """``power`` is more than 1/3 of the total ("f+1": at least one honest)."""
        return power * 3 > self.total_power

    # --- proposer rotation -------------------------------------------------

    def _step_priorities(self, prios: list[int]) -> int:
        """One round-robin step in place; returns the chosen proposer's index."""
        best = 0
        for i, v in enumerate(self.validators):
            prios[i] += v.power
            if prios[i] > prios[best] or (prios[i] == prios[best]
                                          and self._addresses[i] < self._addresses[best]):
                best = i
        prios[best] -= self.total_power
        return best

    def _normalised(self) -> list[int]:
        """Priorities rescaled into the window and centred on zero (CometBFT order)."""
        prios = [v.priority for v in self.validators]
        window = PRIORITY_WINDOW_FACTOR * self.total_power
        spread = max(prios) - min(prios)
        if spread > window:
            ratio = -(-spread // window)
            prios = [_trunc_div(p, ratio) for p in prios]
        avg = sum(prios) // len(prios)
        return [p - avg for p in prios]

    def proposer_index(self, round: int) -> int:
        """Index of the proposer for ``round`` of this set's height (cached per set)."""
        if round < 0:
            raise ConsensusMisuseError("round must be >= 0")
        if len(self._proposers) <= round:
            prios = self._normalised()
            chosen: list[int] = []
            for _ in range(round + 1):
                chosen.append(self._step_priorities(prios))
            self._proposers = chosen
        return self._proposers[round]

    def proposer(self, round: int) -> Validator:
        return self.validators[self.proposer_index(round)]

    def advanced(self, times: int = 1) -> ValidatorSet:
        """The set for the next height: priorities stepped ``times`` times."""
        prios = self._normalised()
        for _ in range(times):
            self._step_priorities(prios)
        return ValidatorSet([Validator(pub_key=v.pub_key, power=v.power, priority=p)
                             for v, p in zip(self.validators, prios)])

    # --- votes -------------------------------------------------------------

    def verify_vote(self, chain_id: str, vote: Vote) -> None:
        """Check the vote's signer is the member at its index and the signature holds.

        Raises:
            InvalidMessageError: unknown validator, index/address mismatch or bad signature.
        """
        i = vote.validator_index
        if i >= len(self.validators) or self._addresses[i] != vote.validator_address:
            raise InvalidMessageError("vote from a validator not at that index in the set")
        if not vote.verify_signature(chain_id, self.validators[i].pub_key):
            raise InvalidMessageError("bad vote signature")

    # --- encoding ------------------------------------------------------------

    def to_value(self) -> list[Value]:
        return [[v.pub_key, v.power, v.priority] for v in self.validators]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def from_value(cls, value: Value) -> ValidatorSet:
        items = expect_list(value, what="validators", max_length=MAX_VALIDATORS)
        vals = []
        for item in items:
            f = expect_list(item, 3, what="validator")
            vals.append(Validator(pub_key=expect_bytes(f[0], what="validator.pub_key",
                                                       size=PUBKEY_SIZE),
                                  power=expect_int(f[1], what="validator.power", lo=1,
                                                   hi=MAX_TOTAL_VOTING_POWER),
                                  priority=expect_int(f[2], what="validator.priority",
                                                      lo=-(2**63), hi=2**63 - 1)))
        try:
            return cls(vals)
        except ConsensusMisuseError as exc:
            raise DecodeError(f"validators: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> ValidatorSet:
        return cls.from_value(decode(data))


def verify_commit(chain_id: str, valset: ValidatorSet, block_id: bytes, height: int,
                  commit: Commit) -> None:
    """Check ``commit`` proves +2/3 of ``valset``'s power precommitted ``block_id`` at ``height``.

    Every present signature is verified (not just enough of them), as CometBFT's
    ``VerifyCommit`` does for the current set, so a commit that verifies holds
    no forged entry.

    Raises:
        InvalidCommitError: wrong height or block, wrong size, a bad signature,
            or not enough power.
    """
    if commit.height != height:
        raise InvalidCommitError(f"commit is for height {commit.height}, expected {height}")
    if commit.block_id != block_id:
        raise InvalidCommitError("commit is for a different block")
    if len(commit.signatures) != len(valset):
        raise InvalidCommitError(
            f"commit has {len(commit.signatures)} entries for {len(valset)} validators")
    body = vote_sign_body(VoteType.PRECOMMIT, height, commit.round, block_id)
    power = 0
    for i, sig in enumerate(commit.signatures):
        if not sig:
            continue
        if not verify(valset.validators[i].pub_key, VOTE_DOMAIN, chain_id, body, sig):
            raise InvalidCommitError(f"bad precommit signature at index {i}")
        power += valset.validators[i].power
    if not valset.has_two_thirds(power):
        raise InvalidCommitError(f"commit power {power} is not +2/3 of {valset.total_power}")

