"""Off-chain signed objects the ledger checks: fee vouchers and permission strings.

* A **voucher** is signed by the host: "I owe the owner ``cumulative_amount``
  for ``cumulative_count`` queries of ``model_id`` so far". Cumulative totals
  make vouchers idempotent: the owner only ever needs the latest one, and
  the ledger pays the difference to what was already redeemed.
  Sign bytes: ``b"oml/voucher/v1" || chain || encode([model_id, host,
  cumulative_count, cumulative_amount])``.
* A **permission string** is signed by the model owner: "host may answer
  the query whose hash is ``query_hash`` (sequence ``seq``), issued when the
  chain was at ``issued_height``". A host shows it to rebut a claim. Sign
  bytes: ``b"oml/permission/v2" || chain || encode([model_id, host, seq,
  query_hash, issued_height])``.

``issued_height`` is the height of the latest block committed when the owner
signed. It dates the permission so that one bought *after* a claim was
committed cannot rebut that claim: the ledger accepts a rebuttal only with
``issued_height < claim.committed_height`` (the owner had not yet seen the
block holding the claim's commitment, and the claimed keys were hidden
until then). v1 strings carried no height and are not valid under v2.

The query hash is SHA-256 of :func:`oml.commitments.normalize_text` of the
prompt, so the prover's key and the host's prompt hash equally whenever
they are the same text.

Host gateway and owner permission service use these helpers; the ledger
uses the ``verify_*`` ones.
"""

from __future__ import annotations

import hashlib

from consensus.crypto import PrivateKey, Signer, verify
from consensus.encoding import U64_MAX, encode
from oml.commitments import normalize_text

from .errors import LedgerUsageError

VOUCHER_DOMAIN = b"oml/voucher/v1"
PERMISSION_DOMAIN = b"oml/permission/v2"


def query_hash(query: str) -> bytes:
    """SHA-256 of the normalised query text (what a permission string covers)."""
    return hashlib.sha256(normalize_text(query)).digest()


def voucher_body(model_id: bytes, host: bytes, cumulative_count: int,
                 cumulative_amount: int) -> bytes:
    return encode([model_id, host, cumulative_count, cumulative_amount])


def sign_voucher(host_key: PrivateKey | Signer, chain_id: str, model_id: bytes,
                 cumulative_count: int, cumulative_amount: int) -> bytes:
    """The host signs its cumulative debt for ``model_id``; returns the signature."""
    body = voucher_body(model_id, host_key.address, cumulative_count, cumulative_amount)
    return host_key.sign(VOUCHER_DOMAIN, chain_id, body)


def verify_voucher(host_pubkey: bytes, chain_id: str, model_id: bytes, host: bytes,
                   cumulative_count: int, cumulative_amount: int, signature: bytes) -> bool:
    body = voucher_body(model_id, host, cumulative_count, cumulative_amount)
    return verify(host_pubkey, VOUCHER_DOMAIN, chain_id, body, signature)


def permission_body(model_id: bytes, host: bytes, seq: int, qhash: bytes,
                    issued_height: int) -> bytes:
    return encode([model_id, host, seq, qhash, issued_height])


def sign_permission(owner_key: PrivateKey | Signer, chain_id: str, model_id: bytes,
                    host: bytes, seq: int, query: str, *, issued_height: int) -> bytes:
    """The owner allows ``host`` to answer ``query``; returns the signature.

    ``issued_height`` must be the height of the latest block the owner's node
    has committed at signing time (or lower). Keyword-only, so that a caller
    written for the v1 format fails loudly instead of signing a wrong body.

    Raises:
        LedgerUsageError: ``issued_height`` is not an unsigned 64-bit int.
    """
    if isinstance(issued_height, bool) or not isinstance(issued_height, int) \
            or not 0 <= issued_height <= U64_MAX:
        raise LedgerUsageError(f"issued_height must be a u64 height, got {issued_height!r}")
    body = permission_body(model_id, host, seq, query_hash(query), issued_height)
    return owner_key.sign(PERMISSION_DOMAIN, chain_id, body)


def verify_permission(owner_pubkey: bytes, chain_id: str, model_id: bytes, host: bytes,
                      seq: int, qhash: bytes, signature: bytes, *, issued_height: int) -> bool:
    """Whether ``signature`` is the owner's permission for exactly these fields.

    Says nothing about *when*: the caller compares ``issued_height`` with the
    claim's height (:func:`node.ledger.claims.rebut`).
    """
    body = permission_body(model_id, host, seq, qhash, issued_height)
    return verify(owner_pubkey, PERMISSION_DOMAIN, chain_id, body, signature)
