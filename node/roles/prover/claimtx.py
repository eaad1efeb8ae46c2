"""The two claim transactions a prover signs, and the commitment that hides the first.

All of the prover's knowledge of the ledger's claim format lives here, so
a change to the format is a change to this one module::

    commit_claim(model_id, host, commitment, bond)
    open_claim(claim_id, items = [[fp_index, key, output], ...], salt)

    commitment = SHA-256("oml/claim/v1" || encode([chain_id, prover, model_id, host,
                                                   [[fp_index, key, output], ...], salt]))

The commitment is the ledger's own function
(:func:`node.ledger.claimhash.claim_commitment`), so the two cannot drift;
so is the least bond (:func:`node.ledger.claims.required_claim_bond`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from node.ledger.claimhash import CLAIM_DOMAIN
from node.ledger.claimhash import claim_commitment as ledger_commitment
from node.ledger.claims import required_claim_bond
from node.ledger.params import Params
from node.ledger.records import HostRecord
from node.ledger.txs import CLAIM_SALT, CommitClaimBody, OpenClaimBody

SALT_SIZE = CLAIM_SALT
Item = tuple[int, str, str]
"""(fp_index, key text, observed output)."""


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def claim_commitment(chain_id: str, prover: bytes, model_id: bytes, host: bytes,
                     items: Sequence[Item], salt: bytes) -> bytes:
    """The hash a ``commit_claim`` posts and ``open_claim`` must open (the ledger's own)."""
    return ledger_commitment(chain_id, prover, model_id, host, list(items), salt)


def least_bond(params: Params, host_record: HostRecord) -> int:
    """The smallest bond the ledger accepts for a claim against ``host_record``."""
    return required_claim_bond(params, host_record)


def commit_body(model_id: bytes, host: bytes, commitment: bytes, bond: int) -> CommitClaimBody:
    return CommitClaimBody(model_id=model_id, host=host, commitment=commitment, bond=bond)


def open_body(claim_id: int, items: Sequence[Item], salt: bytes) -> OpenClaimBody:
    return OpenClaimBody(claim_id=claim_id, items=tuple((int(i), str(k), str(o))
                                                        for i, k, o in items), salt=salt)


def claim_id_from_events(events: Sequence[Any]) -> int | None:
    """The claim id a committed ``commit_claim`` was given (its event's ``claim_id``).

    ``events`` as the chain's tx index stores them: ``{"type", "attributes"}``.
    """
    for event in events:
        if isinstance(event, dict) and event.get("type") == "claim_committed":
            attrs = event.get("attributes") or {}
            if "claim_id" in attrs:
                return int(attrs["claim_id"])
    return None


__all__ = ["CLAIM_DOMAIN", "Item", "claim_commitment", "claim_id_from_events", "commit_body",
           "least_bond", "new_salt", "open_body"]
