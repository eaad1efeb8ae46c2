"""Which query hashes claims waiting in the node's mempool name, per (model, host).

The owner must not sell a permission for a query a prover is already
claiming: a claim in the mempool is one the owner's node has seen, and the
permission it would sign now is dated at or after the block that will hold
the claim, so it could not rebut it anyway; refusing tells the host at once.

A scan reads every pending transaction, but decodes each one only once:
decoded results are cached by the raw bytes object the mempool holds (whose
hash Python caches too), so a scan of an unchanged mempool costs a dict
lookup per transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from node.ledger.errors import TxDecodeError
from node.ledger.txs import Kind, decode_tx
from node.ledger.vouchers import query_hash

ClaimKey = tuple[bytes, bytes, bytes]
"""(model_id, host, query hash) named by one pending ``submit_claim``."""


def claim_key(raw: bytes) -> ClaimKey | None:
    """The (model, host, query hash) of a ``submit_claim`` transaction, else None."""
    try:
        tx = decode_tx(raw)
    except TxDecodeError:
        return None
    if tx.kind != Kind.SUBMIT_CLAIM:
        return None
    body = tx.body
    return body.model_id, body.host, query_hash(body.key)  # type: ignore[union-attr]


class PendingClaims:
    """Scans a mempool for claims; ``mempool_txs()`` yields the raw pending transactions."""

    def __init__(self, mempool_txs: Callable[[], Iterable[bytes]]) -> None:
        self._txs = mempool_txs
        self._cache: dict[bytes, ClaimKey | None] = {}

    def hashes(self, model_id: bytes, host: bytes) -> set[bytes]:
        """Query hashes of pending claims against ``host`` for ``model_id``."""
        out: set[bytes] = set()
        seen: dict[bytes, ClaimKey | None] = {}
        cache = self._cache
        for raw in self._txs():
            key = cache[raw] if raw in cache else claim_key(raw)
            seen[raw] = key
            if key is not None and key[0] == model_id and key[1] == host:
                out.add(key[2])
        self._cache = seen  # forget transactions that left the mempool
        return out
