"""The app hash: a hash chain over every block's sorted write set.

::

    write_set_hash = SHA-256( concat over writes sorted by (table, key) of
                              encode([table, key, present, value]) )
    app_hash(h)    = SHA-256( b"oml/apphash/v1" || 0x00 || app_hash(h-1) ||
                              u64_be(h) || write_set_hash )

with ``present`` 1 and the new value for a put, 0 and empty bytes for a
deletion, and ``app_hash(-1)`` 32 zero bytes (genesis is height 0, its
write set is the initial state). Because the state after block ``h`` is a
function of the genesis state and the write sets of blocks ``1..h``, the
chain commits to the whole state: two nodes with equal app hashes applied
identical writes. Hashing only the writes keeps the cost proportional to
the block, not the state (a Merkle tree over the state would also give
inclusion proofs; that is left for a later version).

The bookkeeping keys written after hashing (height, app hash, block time in
the ``meta`` table) are not part of the write set.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

import msgpack

APPHASH_DOMAIN = b"oml/apphash/v1\x00"
GENESIS_PREV = bytes(32)


def write_set_hash(writes: Mapping[tuple[bytes, bytes], bytes | None]) -> bytes:
    # Tables, keys and values are all bytes, so plain msgpack is the canonical
    # encoding here (consensus.encoding.encode would only re-check the types).
    h = hashlib.sha256()
    pack = msgpack.Packer(use_bin_type=True).pack
    for table, key in sorted(writes):
        value = writes[(table, key)]
        h.update(pack([table, key, 0, b""] if value is None else [table, key, 1, value]))
    return h.digest()


def next_app_hash(prev: bytes, height: int,
                  writes: Mapping[tuple[bytes, bytes], bytes | None]) -> bytes:
    return hashlib.sha256(APPHASH_DOMAIN + prev + struct.pack(">Q", height)
                          + write_set_hash(writes)).digest()
