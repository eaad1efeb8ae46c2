"""``valid(v)`` of Algorithm 1: the checks a block must pass before a validator votes for it.

Kept apart from the core's rules because block sync applies the same checks
to blocks fetched from peers.
"""

from __future__ import annotations

from .app import Application
from .block import Block
from .errors import InvalidBlockError
from .state import ChainState, ConsensusParams
from .validators import ValidatorSet, verify_commit


def check_block(block: Block, state: ChainState, valset: ValidatorSet, params: ConsensusParams,
                app: Application) -> None:
    """Check ``block`` as the next block after ``state``; the application has the last word.

    Raises:
        InvalidBlockError: a header or body rule fails, or the application refuses.
        InvalidCommitError: the previous block's commit in it does not verify.
    """
    block.validate_basic()
    h = block.header
    if h.chain_id != state.chain_id or h.height != state.height + 1:
        raise InvalidBlockError("block for another chain or height")
    if h.prev_block_id != state.last_block_id:
        raise InvalidBlockError("block does not extend our last block")
    if h.time_ms < state.min_next_time_ms():
        raise InvalidBlockError("block time not after the previous block")
    if h.app_hash != state.app_hash:
        raise InvalidBlockError("app hash differs from ours after the previous block")
    if h.validators_hash != valset.hash():
        raise InvalidBlockError("validators hash differs")
    if valset.index_of(h.proposer_address) is None:
        raise InvalidBlockError("proposer is not a validator")
    if sum(len(t) for t in block.txs) > params.max_block_txs_bytes:
        raise InvalidBlockError("transactions exceed the block size limit")
    if h.height > 1 and block.last_commit != state.last_commit:
        assert block.last_commit is not None  # validate_basic checked it
        # The validator set is fixed, so the previous height's members are ours.
        verify_commit(state.chain_id, valset, state.last_block_id, h.height - 1,
                      block.last_commit)
    app.validate_block(block)


def is_timely(block: Block, now_ms: int, round: int, params: ConsensusParams) -> bool:
    """A fresh proposal's time is near the receiver's clock (proposer-based time, like PBTS).

    Not in the future by more than the clock drift, and not older than the
    drift plus the round's propose timeout (the longest a timely proposal
    can have waited for us). Re-proposals (with a proof-of-lock) are exempt,
    as in CometBFT, because their block was made in an earlier round.
    """
    t, drift = block.header.time_ms, params.clock_drift_ms
    return now_ms - drift - params.propose_timeout(round) <= t <= now_ms + drift
