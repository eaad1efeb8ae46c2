"""The application interface the core calls, like a narrowed CometBFT ABCI.

The core calls these synchronously while it handles an event, because each
answer is needed before the core can decide its next action (what to
propose, whether to prevote for a block, what app hash the next header must
carry). That keeps the driver surface small: no request/response events,
no half-finished heights waiting for the application.

Contract (what makes the simulation and crash recovery sound):

* ``propose_txs`` may depend on local state (a mempool); it is called only
  when this node proposes a fresh block. A re-proposal after a crash takes
  the block from the WAL, so the answer may differ between runs.
* ``validate_block`` must be deterministic in the block and the application
  state after the previous block; it must not change state.
* ``apply_block`` executes a committed block and returns the app hash after
  it (ABCI ``FinalizeBlock``). The application may keep those changes staged
  and make them durable when the driver executes the matching
  :class:`~consensus.events.CommitBlock` action (ABCI ``Commit``), after it
  stored the block. It is called exactly once per height, in order.
"""

from __future__ import annotations

from typing import Protocol

from .block import Block


class Application(Protocol):
    def propose_txs(self, height: int, max_bytes: int) -> list[bytes]:
        """Transactions for a new block at ``height``, at most ``max_bytes`` in total."""
        ...

    def validate_block(self, block: Block) -> bool | None:
        """Accept ``block``'s transactions, or raise :class:`InvalidBlockError` (preferred:
        the reason is kept) or return False."""
        ...

    def apply_block(self, block: Block) -> bytes:
        """Execute a committed block; return the app hash after it."""
        ...
