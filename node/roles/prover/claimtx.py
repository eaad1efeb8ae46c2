"""The two claim transactions a prover signs, and the commitment that hides the first.

All of the prover's knowledge of the ledger's claim format lives here, so
a change to the format is a change to this one module::

    commit_claim(model_id, host, commitment, bond)
    open_claim(claim_id, items = [[fp_index, key, output], ...], salt)

    commitment = SHA-256("oml/claim/v1" || encode([chain_id, prover, model_id, host,
                                                   [[fp_index, key, output], ...], salt]))

The commitment is the ledger's own function when the ledger has one
(:func:`node.ledger.claimhash.claim_commitment`), so the two cannot drift;
so is the least bond (:func:`node.ledger.claims.required_claim_bond`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from consensus.encoding import encode

CLAIM_DOMAIN = b"oml/claim/v1"
SALT_SIZE = 32
Item = tuple[int, str, str]
"""(fp_index, key text, observed output)."""


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def _local_commitment(chain_id: str, prover: bytes, model_id: bytes, host: bytes,
                      items: Sequence[Item], salt: bytes) -> bytes:
    body = encode([chain_id.encode("utf-8"), prover, model_id, host,
                   [[i, k.encode("utf-8"), o.encode("utf-8")] for i, k, o in items], salt])
    return hashlib.sha256(CLAIM_DOMAIN + body).digest()


def claim_commitment(chain_id: str, prover: bytes, model_id: bytes, host: bytes,
                     items: Sequence[Item], salt: bytes) -> bytes:
    """The hash a ``commit_claim`` posts and ``open_claim`` must open."""
    try:
        from node.ledger.claimhash import claim_commitment as ledger_commitment  # type: ignore
    except ImportError:
        return _local_commitment(chain_id, prover, model_id, host, items, salt)
    return ledger_commitment(chain_id, prover, model_id, host, list(items), salt)


def least_bond(params: Any, host_record: Any) -> int:
    """The smallest bond the ledger accepts for a claim against ``host_record``."""
    try:
        from node.ledger.claims import required_claim_bond  # type: ignore[attr-defined]
    except ImportError:
        return int(params.min_claim_bond)
    return int(required_claim_bond(params, host_record))


def commit_body(model_id: bytes, host: bytes, commitment: bytes, bond: int) -> Any:
    """The ``commit_claim`` body (raises ImportError on a ledger without two-phase claims)."""
    from node.ledger.txs import CommitClaimBody  # type: ignore[attr-defined]

    return CommitClaimBody(model_id=model_id, host=host, commitment=commitment, bond=bond)


def open_body(claim_id: int, items: Sequence[Item], salt: bytes) -> Any:
    """The ``open_claim`` body."""
    from node.ledger.txs import OpenClaimBody  # type: ignore[attr-defined]

    return OpenClaimBody(claim_id=claim_id, items=tuple(tuple(i) for i in items), salt=salt)


def claim_id_from_events(events: Sequence[Any]) -> int | None:
    """The claim id a committed ``commit_claim`` was given (its event's ``claim_id``).

    ``events`` as the chain's tx index stores them: ``{"type", "attributes"}``.
    """
    for event in events:
        if isinstance(event, dict) and event.get("type") in ("claim_committed", "commit_claim"):
            attrs = event.get("attributes") or {}
            if "claim_id" in attrs:
                return int(attrs["claim_id"])
    return None


__all__ = ["CLAIM_DOMAIN", "Item", "claim_commitment", "claim_id_from_events", "commit_body",
           "least_bond", "new_salt", "open_body"]
