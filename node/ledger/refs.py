"""Which storage blobs a transaction makes the chain reference.

Storage peers keep a replication factor for blobs the chain references (a
model's base weights, each host's OML package). They follow committed blocks
and call :func:`referenced_blobs` on every transaction that succeeded, so
the rule for "referenced" lives next to the bodies that carry blob ids
rather than in each role.

Only additions are reported: a blob id replaced by ``update_model`` or a
host's package after withdrawal is not announced as dropped here (a storage
peer that wants to release it reads the current records over the ledger's
queries).
"""

from __future__ import annotations

from .txs import CommitOmlizationBody, RegisterModelBody, Tx, UpdateModelBody


def referenced_blobs(tx: Tx) -> tuple[bytes, ...]:
    """The 32-byte blob ids ``tx`` references once committed, in body order.

    Call it only for a transaction whose block result is OK: a failed one
    changed nothing, so it references nothing.

    Returns:
        ``(blob_id,)`` for a ``register_model`` or ``update_model`` with a
        non-empty blob id, ``(package_blob,)`` for a ``commit_omlization``,
        ``()`` for every other kind.
    """
    body = tx.body
    if isinstance(body, (RegisterModelBody, UpdateModelBody)):
        return (body.blob_id,) if body.blob_id else ()
    if isinstance(body, CommitOmlizationBody):
        return (body.package_blob,)
    return ()
