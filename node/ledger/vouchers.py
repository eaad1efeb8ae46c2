"""Off-chain signed objects the ledger checks: fee vouchers and permission strings.

* A **voucher** is signed by the host: "I owe the owner ``cumulative_amount``
  for ``cumulative_count`` queries of ``model_id`` so far". Cumulative totals
  make vouchers idempotent: the owner only ever needs the latest one, and
  the ledger pays the difference to what was already redeemed.
  Sign bytes: ``b"oml/voucher/v1" || chain || encode([model_id, host,
  cumulative_count, cumulative_amount])``.
* A **permission string** is signed by the model owner: "host may answer
  the query whose hash is ``query_hash`` (sequence ``seq``)". A host shows it
  to rebut a claim. Sign bytes: ``b"oml/permission/v1" || chain ||
  encode([model_id, host, seq, query_hash])``.

The query hash is SHA-256 of :func:`oml.commitments.normalize_text` of the
prompt, so the prover's key and the host's prompt hash equally whenever
they are the same text.

Host gateway and owner permission service use these helpers; the ledger
uses the ``verify_*`` ones.
"""

from __future__ import annotations

import hashlib

from consensus.crypto import PrivateKey, Signer, verify
from consensus.encoding import encode
from oml.commitments import normalize_text

VOUCHER_DOMAIN = b"oml/voucher/v1"
PERMISSION_DOMAIN = b"oml/permission/v1"


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


def permission_body(model_id: bytes, host: bytes, seq: int, qhash: bytes) -> bytes:
    return encode([model_id, host, seq, qhash])


def sign_permission(owner_key: PrivateKey | Signer, chain_id: str, model_id: bytes,
                    host: bytes, seq: int, query: str) -> bytes:
    """The owner allows ``host`` to answer ``query``; returns the signature."""
    body = permission_body(model_id, host, seq, query_hash(query))
    return owner_key.sign(PERMISSION_DOMAIN, chain_id, body)


def verify_permission(owner_pubkey: bytes, chain_id: str, model_id: bytes, host: bytes,
                      seq: int, qhash: bytes, signature: bytes) -> bool:
    body = permission_body(model_id, host, seq, qhash)
    return verify(owner_pubkey, PERMISSION_DOMAIN, chain_id, body, signature)
