"""Verifying a block's transaction signatures on a thread pool.

libsodium's Ed25519 verify is the dominant cost of applying a block, and
PyNaCl (cffi) releases the GIL inside it, so two threads verify almost
twice as fast as one. Two things keep the threads effective:

* the block is verified as one phase while the calling thread *waits*
  (it does not apply transactions meanwhile): a thread running Python
  code holds the GIL for up to the switch interval, and each verifier
  needs the GIL back after every libsodium call, so overlapping the two
  starves the verifiers (the "convoy effect");
* each verifier runs a tight loop over precomputed sign bytes, calling
  the libsodium binding directly, so it holds the GIL as briefly as
  possible.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor

import nacl.bindings
import nacl.exceptions

from consensus.crypto import sign_bytes

from .txs import TX_DOMAIN, Tx

_ERRORS = (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
           nacl.exceptions.TypeError, nacl.exceptions.CryptoError)


def _verify_chunk(items: Sequence[tuple[bytes, bytes]]) -> list[bool]:
    """``items`` are ``(signature || sign_bytes, pubkey)``; True where valid."""
    out = []
    sign_open = nacl.bindings.crypto_sign_open
    for signed, pubkey in items:
        try:
            sign_open(signed, pubkey)
            out.append(True)
        except _ERRORS:
            out.append(False)
    return out


def verify_all(txs: Sequence[Tx], pool: Executor | None, chunk: int = 64) -> list[bool]:
    """Signature validity of each transaction, in order (on ``pool`` if given)."""
    items = [(tx.signature + sign_bytes(TX_DOMAIN, tx.chain_id, tx.unsigned), tx.sender_pubkey)
             for tx in txs]
    if pool is None or len(items) <= chunk:
        return _verify_chunk(items)
    parts = pool.map(_verify_chunk, [items[i:i + chunk] for i in range(0, len(items), chunk)])
    return [ok for part in parts for ok in part]


class VerifiedCache:
    """Hashes of transactions whose signature this node has already verified.

    ``check_tx`` fills it; ``apply_block`` skips verifying a transaction
    whose hash is here (and forgets it). Validity of a signature is a pure
    function of the transaction's bytes on a given chain, and the hash
    covers every byte including the signature, so a hit can never change a
    result: it only saves the second verification of a transaction that
    came through this node's mempool. Bounded (oldest evicted first) and
    thread-safe, since the mempool may run on another thread.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._hashes: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, tx_hash: bytes) -> None:
        if self._capacity <= 0:
            return
        with self._lock:
            self._hashes[tx_hash] = None
            self._hashes.move_to_end(tx_hash)
            while len(self._hashes) > self._capacity:
                self._hashes.popitem(last=False)

    def take(self, tx_hash: bytes) -> bool:
        """True (and forget it) if ``tx_hash`` was verified before."""
        with self._lock:
            return self._hashes.pop(tx_hash, False) is None

    def __len__(self) -> int:
        return len(self._hashes)
