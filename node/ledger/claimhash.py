"""The hiding commitment of a two-phase claim (what ``commit_claim`` carries).

::

    commitment = SHA-256( "oml/claim/v1" ||
                          encode([chain_id, prover, model_id, host,
                                  [[fp_index, key, output], ...], salt]) )

``encode`` is the canonical msgpack of :mod:`consensus.encoding`; ``chain_id``,
``key`` and ``output`` are the UTF-8 bytes of exactly the text the
``open_claim`` transaction later carries (not normalised: the hash binds the
bytes sent), items in the order sent. The 32-byte random ``salt`` makes the
commitment hiding: without it a host could hash its own candidate keys and
outputs and recognise the claim. Binding the chain and the prover means a
commitment seen in the mempool cannot be replayed by someone else, and an
opened claim's items cannot be reused under another prover's name.

Provers compute it with :func:`claim_commitment`; the ledger recomputes it
when the claim is opened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from consensus.encoding import encode

CLAIM_DOMAIN = b"oml/claim/v1"


def claim_commitment(chain_id: str, prover: bytes, model_id: bytes, host: bytes,
                     items: Sequence[tuple[int, str, str]], salt: bytes) -> bytes:
    """The 32-byte commitment to ``items`` (``(fp_index, key, output)``) under ``salt``."""
    body = encode([chain_id.encode("utf-8"), prover, model_id, host,
                   [[int(i), k.encode("utf-8"), o.encode("utf-8")] for i, k, o in items],
                   salt])
    return hashlib.sha256(CLAIM_DOMAIN + body).digest()
