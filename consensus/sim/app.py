"""A tiny deterministic application for the simulator and the benchmark.

Transactions are opaque bytes tagged with the height and proposer, padded to
a configured size; the app hash chains the previous app hash with the block's
transaction root, so every honest node that applies the same blocks reports
the same hash, and a forked history shows up as a different hash.
"""

from __future__ import annotations

import hashlib

from ..block import Block
from ..errors import InvalidBlockError

TX_PREFIX = b"simtx:"


class SimApp:
    """Stateless between calls: the hash after a block depends only on that block."""

    __slots__ = ("applied", "tag", "tx_size", "txs_per_block")

    def __init__(self, txs_per_block: int = 2, tx_size: int = 16, tag: bytes = b"") -> None:
        self.txs_per_block = txs_per_block
        self.tx_size = tx_size
        self.tag = tag
        self.applied = 0

    def propose_txs(self, height: int, max_bytes: int) -> list[bytes]:
        out, used = [], 0
        for i in range(self.txs_per_block):
            head = TX_PREFIX + b"%d:%d:" % (height, i) + self.tag
            tx = head + b"." * max(0, self.tx_size - len(head))
            if used + len(tx) > max_bytes:
                break
            out.append(tx)
            used += len(tx)
        return out

    def validate_block(self, block: Block) -> None:
        for tx in block.txs:
            if not tx.startswith(TX_PREFIX):
                raise InvalidBlockError("simulator transaction without its prefix")

    def apply_block(self, block: Block) -> bytes:
        self.applied += 1
        return app_hash_after(block)


def app_hash_after(block: Block) -> bytes:
    return hashlib.sha256(b"simapp" + block.header.app_hash + block.header.txs_root).digest()
