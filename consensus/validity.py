"""Blocks in and out: ``valid(v)`` of Algorithm 1, timeliness, and building a proposal.

``check_block`` is what a block must pass before a validator votes for it
(block sync applies the same checks); ``build_block``/``make_proposal`` are
its mirror image on the proposer's side, so both read the same rules.
"""

from __future__ import annotations

from .app import Application
from .block import Block, Header, commit_hash
from .crypto import Signer
from .errors import InvalidBlockError
from .merkle import txs_root
from .messages import ProposalMessage
from .state import ChainState, ConsensusParams
from .validators import ValidatorSet, verify_commit
from .vote import Proposal, Vote


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
    if app.validate_block(block) is False:  # a bool-returning application said no
        raise InvalidBlockError("the application refused the block")


def is_timely(block: Block, now_ms: int, round: int, params: ConsensusParams) -> bool:
    """A fresh proposal's time is near the receiver's clock (proposer-based time, like PBTS).

    Not in the future by more than the clock drift, and not older than the
    drift plus the round's propose timeout (the longest a timely proposal
    can have waited for us). Re-proposals (with a proof-of-lock) are exempt,
    as in CometBFT, because their block was made in an earlier round.
    """
    t, drift = block.header.time_ms, params.clock_drift_ms
    return now_ms - drift - params.propose_timeout(round) <= t <= now_ms + drift


def build_block(state: ChainState, valset: ValidatorSet, app: Application,
                params: ConsensusParams, proposer_address: bytes, now_ms: int) -> Block:
    """A fresh block on top of ``state`` with the application's transactions.

    Its time is the proposer's clock, raised to just after the previous block
    if that clock lags.
    """
    txs = tuple(app.propose_txs(state.height + 1, params.max_block_txs_bytes))
    header = Header(chain_id=state.chain_id, height=state.height + 1,
                    time_ms=max(now_ms, state.min_next_time_ms()),
                    prev_block_id=state.last_block_id, txs_root=txs_root(txs),
                    app_hash=state.app_hash, proposer_address=proposer_address,
                    validators_hash=valset.hash(), last_commit_hash=commit_hash(state.last_commit))
    return Block(header=header, txs=txs, last_commit=state.last_commit)


def make_proposal(signer: Signer, chain_id: str, round: int, block: Block, pol_round: int,
                  pol_votes: tuple[Vote, ...]) -> ProposalMessage:
    """Sign a proposal of ``block`` for ``round``, shipping its polka if it has one."""
    proposal = Proposal.create(signer, chain_id, height=block.height, round=round,
                               pol_round=pol_round, block_id=block.id())
    return ProposalMessage(proposal=proposal, block=block, pol_votes=pol_votes)
