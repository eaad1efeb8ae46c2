"""Signing a batch of permission strings fast: the constant bytes are encoded once.

A permission's sign bytes (docs/protocol.md, sections 2 and 5) are

    b"oml/permission/v2" 0x00 encode(chain_id) encode([model_id, host, seq, qhash, height])

and within one batch only ``seq`` and ``qhash`` change. Encoding the whole
list through :func:`consensus.encoding.encode` for every permission (its
canonical-type walk included) cost about as much CPU as the Ed25519
signature itself; here the prefix (domain, chain id, the array header,
``model_id``, ``host``) and the suffix (``height``) are encoded once per batch
and each permission adds the msgpack encodings of its seq and hash. A test
checks the bytes against :func:`node.ledger.vouchers.permission_body` and
the signatures against :func:`node.ledger.vouchers.verify_permission`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

from consensus.crypto import SIGNATURE_SIZE, sign_bytes
from consensus.encoding import encode
from node.ledger.vouchers import PERMISSION_DOMAIN

_ARRAY5 = b"\x95"  # msgpack fixarray of 5: the permission body's header


class PermissionSigner:
    """Signs permission strings with the owner's Ed25519 seed for one chain."""

    def __init__(self, seed: bytes, chain_id: str) -> None:
        self.public_key, self._secret = crypto_sign_seed_keypair(seed)
        self._domain_prefix = sign_bytes(PERMISSION_DOMAIN, chain_id, b"")

    def message(self, model_id: bytes, host: bytes, seq: int, qhash: bytes,
                issued_height: int) -> bytes:
        """The exact bytes signed for one permission (what ``verify_permission`` checks)."""
        return self.sign_bytes_batch(model_id, host, seq, (qhash,), issued_height)[0]

    def sign_bytes_batch(self, model_id: bytes, host: bytes, first_seq: int,
                         query_hashes: Sequence[bytes], issued_height: int) -> list[bytes]:
        head = self._domain_prefix + _ARRAY5 + encode(model_id) + encode(host)
        tail = encode(issued_height)
        if first_seq + len(query_hashes) - 1 > 2**64 - 1:
            raise ValueError("seq out of the u64 range")
        pack = msgpack.Packer(use_bin_type=True).pack
        return [head + pack(first_seq + i) + pack(qhash) + tail
                for i, qhash in enumerate(query_hashes)]

    def sign_batch(self, model_id: bytes, host: bytes, first_seq: int,
                   query_hashes: Sequence[bytes], issued_height: int) -> tuple[bytes, ...]:
        """One signature per hash: permission for seq ``first_seq + i``, dated ``issued_height``.

        The caller has validated the fields (the request's dataclass does):
        ``qhash`` 32 bytes, the ints unsigned 64-bit.
        """
        secret = self._secret
        return tuple(crypto_sign(m, secret)[:SIGNATURE_SIZE]
                     for m in self.sign_bytes_batch(model_id, host, first_seq, query_hashes,
                                                    issued_height))
