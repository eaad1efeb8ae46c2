"""What goes into the core (events) and what comes out (actions).

Inputs are things that happened, named in the past tense, plus the one
command ``Start``; outputs are commands to the driver, named in the
imperative. Every input carries ``now_ms``, the driver's clock: the core
never reads a clock, so the same inputs always give the same outputs.

The driver executes a batch of actions in order. WAL records become
durable in the order they were emitted, and a :class:`Persist` must be
durable before the driver executes any later :class:`Broadcast` or
:class:`CommitBlock`, of the same batch or a later one: nothing the node
signed leaves the process, and no block is committed, before the WAL holds
it. That is what lets a node promise it never signs two conflicting votes
across a crash. A driver may hold records back past the other actions
(``ScheduleTimeout``, ``RequestSync``, ``ReportEvidence``) and across
batches to share one fsync: a record lost in a crash with no ``Broadcast``
or ``CommitBlock`` after it is the same as an input never received.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .block import Block, Commit
from .errors import ConsensusMisuseError
from .evidence import DuplicateVoteEvidence
from .messages import Message, ProposalMessage
from .state import ChainState
from .vote import Vote


class Step(enum.IntEnum):
    """A round's steps; also the timeout kinds (GOSSIP is a per-height retry timer).

    ``WAIT_FOR_TXS`` is round 0 before its proposal step while the node waits
    for transactions (``create_empty_blocks`` off, or an interval set); its
    timeout is the empty-block interval. It sorts after GOSSIP only because
    the values are on disk (WAL records); it comes before PROPOSE in a round.
    """

    NEW_HEIGHT = 0
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3
    GOSSIP = 4
    WAIT_FOR_TXS = 5


def _now(v: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConsensusMisuseError("now_ms must be a non-negative int")


# --- events -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Begin working on the height after the chain state (called once, or by restore)."""

    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalReceived:
    message: ProposalMessage
    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)
        if not isinstance(self.message, ProposalMessage):
            raise ConsensusMisuseError("ProposalReceived needs a ProposalMessage")


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteReceived:
    vote: Vote
    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)
        if not isinstance(self.vote, Vote):
            raise ConsensusMisuseError("VoteReceived needs a Vote")


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutFired:
    height: int
    round: int
    step: Step
    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)
        if not isinstance(self.step, Step):
            raise ConsensusMisuseError("step must be a Step")


@dataclass(frozen=True, slots=True, kw_only=True)
class TxsAvailable:
    """The driver's answer to :class:`WaitForTxs`: the mempool holds transactions
    a block could include (CometBFT's ``TxsAvailable``)."""

    height: int
    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)
        if isinstance(self.height, bool) or not isinstance(self.height, int) or self.height < 1:
            raise ConsensusMisuseError("height must be a positive int")


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedBlockReceived:
    """A block and its commit fetched from a peer (block sync, after :class:`RequestSync`)."""

    block: Block
    commit: Commit
    now_ms: int

    def __post_init__(self) -> None:
        _now(self.now_ms)


Event = (Start | ProposalReceived | VoteReceived | TimeoutFired | CommittedBlockReceived
         | TxsAvailable)


# --- actions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Message


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Feed ``TimeoutFired(height, round, step)`` back after ``delay_ms``."""

    height: int
    round: int
    step: Step
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Persist:
    """Append ``record`` to the WAL, durable (in order) before any later Broadcast or CommitBlock.

    The record may wait, even into later batches, while only other actions
    run; see the module docstring.
    """

    record: bytes


@dataclass(frozen=True, slots=True)
class CommitBlock:
    """Store ``block`` with ``commit``, make the app's changes durable, save ``state``."""

    block: Block
    commit: Commit
    state: ChainState


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class RequestSync:
    """Fetch committed blocks from ``height`` on from peers (we saw a later height)."""

    height: int


@dataclass(frozen=True, slots=True)
class WaitForTxs:
    """Feed ``TxsAvailable(height)`` once the mempool holds a transaction a block
    could include (at once if it already does). Emitted at most once per height;
    an answer for a height the core has left is ignored, so a driver need not
    cancel anything."""

    height: int


Action = (Broadcast | ScheduleTimeout | Persist | CommitBlock | ReportEvidence | RequestSync
          | WaitForTxs)
