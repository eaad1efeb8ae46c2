"""Typed consensus errors: our misuse, a peer's misbehaviour, a broken invariant.

The three families call for three different reactions (see STYLE.md):
a :class:`ConsensusMisuseError` is a bug in the caller (fix the code), an
:class:`InvalidMessageError` comes from a peer (drop the message, maybe score
the peer, change nothing), and an :class:`InvariantError` means our own state
is inconsistent (halt rather than risk signing twice).
"""

from __future__ import annotations

from .encoding import DecodeError


class ConsensusError(Exception):
    """Base of every consensus error; a driver may catch this one type."""


class ConsensusMisuseError(ConsensusError, ValueError):
    """The caller built an invalid value or called the core out of order."""


class InvalidMessageError(ConsensusError):
    """A message from outside is well-formed bytes but breaks a rule (bad signature, ...)."""


class InvalidBlockError(InvalidMessageError):
    """A proposed or synced block breaks a header or application rule."""


class InvalidCommitError(InvalidMessageError):
    """A commit does not carry +2/3 valid precommit signatures for the block."""


class InvalidEvidenceError(InvalidMessageError):
    """Evidence of misbehaviour does not prove what it claims."""


class InvariantError(ConsensusError):
    """Our own state broke an invariant (e.g. about to sign a conflicting vote): halt."""


__all__ = [
    "ConsensusError",
    "ConsensusMisuseError",
    "DecodeError",
    "InvalidBlockError",
    "InvalidCommitError",
    "InvalidEvidenceError",
    "InvalidMessageError",
    "InvariantError",
]
