"""Consensus parameters and the chain state a height starts from.

:class:`ChainState` is what the core needs to know about the committed
chain (CometBFT's ``sm.State``): the last block's id, time and commit, the
app hash after it, and the validator set for the next height with its
proposer priorities. The driver persists it whenever it executes a
:class:`~consensus.events.CommitBlock` action (which carries the new state)
and hands it back to :meth:`Core.restore` after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .block import Block, Commit
from .encoding import (
    DecodeError,
    Value,
    decode,
    encode,
    expect_bytes,
    expect_int,
    expect_list,
    expect_text,
)
from .errors import ConsensusMisuseError
from .validators import ValidatorSet


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsensusParams:
    """Timeouts (virtual or real milliseconds) and limits. Timeouts grow linearly per round."""

    timeout_propose_ms: int = 1000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 500
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 500
    timeout_precommit_delta_ms: int = 500
    #: pause after a commit before round 0 of the next height (0 = start at once)
    timeout_commit_ms: int = 0
    #: how often a node re-sends its own messages of the current height and asks
    #: for blocks when it has seen a later height (stands in for gossip retries)
    gossip_interval_ms: int = 2000
    #: byte budget handed to ``Application.propose_txs``
    max_block_txs_bytes: int = 4 * 1024 * 1024
    #: how far a fresh proposal's time may be ahead of (or, plus timeout_propose,
    #: behind) the receiver's clock
    clock_drift_ms: int = 1000
    #: votes and proposals more than this many rounds ahead are dropped (memory bound)
    max_rounds_ahead: int = 50
    #: False: round 0 waits for transactions before its proposal step (CometBFT's
    #: create_empty_blocks), except for a block right after one with transactions
    create_empty_blocks: bool = True
    #: > 0: round 0 waits for transactions at most this long, then goes ahead
    #: (an empty block); also turns the wait on when create_empty_blocks is True
    create_empty_blocks_interval_ms: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "create_empty_blocks":
                if not isinstance(v, bool):
                    raise ConsensusMisuseError("create_empty_blocks must be a bool")
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConsensusMisuseError(f"{f.name} must be a non-negative int")
        if self.gossip_interval_ms == 0 or self.timeout_propose_ms == 0:
            raise ConsensusMisuseError("gossip_interval_ms and timeout_propose_ms must be > 0")

    @property
    def waits_for_txs(self) -> bool:
        """Whether round 0 waits for transactions (CometBFT's ``WaitForTxs``)."""
        return not self.create_empty_blocks or self.create_empty_blocks_interval_ms > 0

    def propose_timeout(self, round: int) -> int:
        return self.timeout_propose_ms + self.timeout_propose_delta_ms * round

    def prevote_timeout(self, round: int) -> int:
        return self.timeout_prevote_ms + self.timeout_prevote_delta_ms * round

    def precommit_timeout(self, round: int) -> int:
        return self.timeout_precommit_ms + self.timeout_precommit_delta_ms * round


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainState:
    chain_id: str
    #: last committed height (0 before the first block)
    height: int
    last_block_id: bytes
    last_block_time_ms: int
    last_commit: Commit | None
    #: application hash after the last committed block (the next header carries it)
    app_hash: bytes
    #: validator set for height + 1, priorities included
    validators: ValidatorSet

    def __post_init__(self) -> None:
        if self.height < 0 or (self.height == 0) != (self.last_commit is None):
            raise ConsensusMisuseError("last_commit must be present exactly when height > 0")
        if self.height > 0 and len(self.last_block_id) != 32:
            raise ConsensusMisuseError("last_block_id must be 32 bytes after genesis")

    @classmethod
    def genesis(cls, chain_id: str, genesis_time_ms: int, validators: ValidatorSet,
                app_hash: bytes = b"") -> ChainState:
        return cls(chain_id=chain_id, height=0, last_block_id=b"",
                   last_block_time_ms=genesis_time_ms, last_commit=None, app_hash=app_hash,
                   validators=validators)

    def next(self, block: Block, commit: Commit, app_hash: bytes) -> ChainState:
        """The state after committing ``block`` with ``commit``."""
        return replace(self, height=block.height, last_block_id=block.id(),
                       last_block_time_ms=block.header.time_ms, last_commit=commit,
                       app_hash=app_hash, validators=self.validators.advanced())

    def min_next_time_ms(self) -> int:
        """The earliest time the next header may carry (strictly after the last block)."""
        return self.last_block_time_ms + (1 if self.height > 0 else 0)

    def to_value(self) -> list[Value]:
        return [self.chain_id.encode("utf-8"), self.height, self.last_block_id,
                self.last_block_time_ms,
                [] if self.last_commit is None else self.last_commit.to_value(),
                self.app_hash, self.validators.to_value()]

    def encode(self) -> bytes:
        return encode(self.to_value())

    @classmethod
    def decode(cls, data: bytes) -> ChainState:
        f = expect_list(decode(data), 7, what="chain state")
        lc = expect_list(f[4], what="chain_state.last_commit")
        try:
            return cls(chain_id=expect_text(f[0], what="chain_state.chain_id", max_size=50),
                       height=expect_int(f[1], what="chain_state.height", hi=2**63 - 1),
                       last_block_id=expect_bytes(f[2], what="chain_state.last_block_id",
                                                  max_size=32),
                       last_block_time_ms=expect_int(f[3], what="chain_state.time", hi=2**63 - 1),
                       last_commit=Commit.from_value(lc) if lc else None,
                       app_hash=expect_bytes(f[5], what="chain_state.app_hash", max_size=64),
                       validators=ValidatorSet.from_value(f[6]))
        except ConsensusMisuseError as exc:
            raise DecodeError(f"chain state: {exc}") from None
