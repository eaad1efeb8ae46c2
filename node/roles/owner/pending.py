"""Which query hashes claims waiting in the node's mempool name, per (model, host).

Claims are two-phase (docs/protocol.md, Claims): ``commit_claim`` hides its
keys, and only a permission issued before the commitment's height can rebut,
so no permission sold after the commitment can help a host. The keys become
visible in a pending ``open_claim``; refusing to sell them then tells the
host at once that the query is being claimed (the ledger would reject the
permission as late anyway).

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
"""(model_id, host, query hash) named by one pending ``open_claim`` item."""

ClaimTarget = Callable[[int], "tuple[bytes, bytes] | None"]
"""claim id -> (model_id, host) of the committed claim, or None if unknown."""


def claim_keys(raw: bytes, target: ClaimTarget) -> tuple[ClaimKey, ...]:
    """The (model, host, query hash) of each item of an ``open_claim``, else ()."""
    try:
        tx = decode_tx(raw)
    except TxDecodeError:
        return ()
    if tx.kind != Kind.OPEN_CLAIM:
        return ()
    body = tx.body
    where = target(body.claim_id)  # type: ignore[union-attr]
    if where is None:
        return ()
    return tuple((where[0], where[1], query_hash(key))
                 for _i, key, _o in body.items)  # type: ignore[union-attr]


class PendingClaims:
    """Scans a mempool for claims; ``mempool_txs()`` yields the raw pending transactions."""

    def __init__(self, mempool_txs: Callable[[], Iterable[bytes]],
                 target: ClaimTarget = lambda _claim_id: None) -> None:
        self._txs = mempool_txs
        self._target = target
        self._cache: dict[bytes, tuple[ClaimKey, ...]] = {}

    def hashes(self, model_id: bytes, host: bytes) -> set[bytes]:
        """Query hashes of pending claims against ``host`` for ``model_id``."""
        out: set[bytes] = set()
        seen: dict[bytes, tuple[ClaimKey, ...]] = {}
        cache = self._cache
        for raw in self._txs():
            keys = cache[raw] if raw in cache else claim_keys(raw, self._target)
            seen[raw] = keys
            out.update(k[2] for k in keys if k[0] == model_id and k[1] == host)
        self._cache = seen  # forget transactions that left the mempool
        return out
