"""Helpers for implementing :class:`NodeBackend` over the ledger and the mempool.

Duck-typed on purpose (no import of ``node.ledger`` or ``node.mempool``): the
RPC package stays usable with any backend, and these only need the
attributes named below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import BlockView, CheckResult, MempoolView, NewBlockEvent, TxResult, TxView


def _codespace(code: Any) -> str:
    """``Code.BAD_NONCE`` -> ``"bad_nonce"`` (an IntEnum's name); plain ints -> ``""``."""
    name = getattr(code, "name", None)
    return name.lower() if isinstance(name, str) and int(code) != 0 else ""


def tx_result_from_ledger(result: Any) -> TxResult:
    """RPC :class:`TxResult` from a ledger result with ``code``, ``log`` and ``events``
    (each event having ``to_json()``)."""
    return TxResult(code=int(result.code), log=result.log, codespace=_codespace(result.code),
                    events=tuple(e.to_json() for e in getattr(result, "events", ())))


def check_result_from_add(result: Any) -> CheckResult:
    """RPC :class:`CheckResult` from a mempool ``AddResult`` (``tx_hash``, ``code``,
    ``log``, ``codespace``)."""
    return CheckResult(code=int(result.code), hash=result.tx_hash, log=result.log,
                       codespace=result.codespace)


def new_block_event(block: BlockView, results: Sequence[Any],
                    tx_hashes: Sequence[bytes] | None = None) -> NewBlockEvent:
    """The event to publish after committing ``block`` with ledger ``results``
    (one per tx, in block order; each with ``tx_hash`` unless ``tx_hashes`` is given)."""
    if len(results) != len(block.txs):
        raise ValueError(f"{len(results)} results for {len(block.txs)} txs")
    views = []
    for i, (tx, res) in enumerate(zip(block.txs, results, strict=True)):
        h = tx_hashes[i] if tx_hashes is not None else res.tx_hash
        views.append(TxView(hash=h, height=block.height, index=i, tx=tx,
                            result=tx_result_from_ledger(res)))
    return NewBlockEvent(block=block, txs=tuple(views))


def mempool_view(mempool: Any, limit: int) -> MempoolView:
    """:class:`MempoolView` of a ``Mempool`` (``len``, ``size_bytes``, ``reap``), for
    ``unconfirmed_txs``: a backend's method can be ``return mempool_view(self.mempool, limit)``."""
    txs = mempool.reap(mempool.size_bytes, limit) if limit > 0 else []
    return MempoolView(total=len(mempool), total_bytes=mempool.size_bytes, txs=tuple(txs))
