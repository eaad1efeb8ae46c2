"""The mempool's check callback, with a cache of signature-verified transactions.

The mempool calls its check on admission *and* on every pending transaction
after every block (nonces move on). ``Ledger.check_tx`` verifies the Ed25519
signature each time (~70 us), so a pool of a few thousand transactions
would spend most of every block re-verifying signatures that cannot have
changed. :class:`CachedCheck` runs the full ``check_tx`` once per
transaction and remembers ``(sender, nonce)`` for those that passed; a
recheck then only compares the nonce with the sender's account, which is
exactly the stateful half of ``check_tx`` (decoding, chain id and signature
are functions of the bytes alone, so their verdict cannot change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from .ledger import Code, TxCheck, TxDecodeError, decode_tx
from .mempool import tx_hash


class CachedCheck:
    """``check(tx) -> TxCheck`` equivalent to ``ledger.check_tx``, cheaper on recheck."""

    def __init__(self, ledger: Any, *, capacity: int = 100_000) -> None:
        self.ledger = ledger
        self.capacity = capacity
        self._ok: OrderedDict[bytes, tuple[bytes, int]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        # sender -> next nonce, valid while the ledger stays at _memo_height
        # (state changes only in apply_block, which moves the height)
        self._nonces: dict[bytes, int | None] = {}
        self._memo_height = -1

    def _next_nonce(self, sender: bytes) -> int | None:
        if self._memo_height != self.ledger.height:
            self._nonces.clear()
            self._memo_height = self.ledger.height
        if sender not in self._nonces:
            acct = self.ledger.account(sender)
            self._nonces[sender] = None if acct is None else acct.nonce
        return self._nonces[sender]

    def __call__(self, tx: bytes) -> TxCheck:
        h = tx_hash(tx)
        cached = self._ok.get(h)
        if cached is None:
            self.misses += 1
            res = self.ledger.check_tx(tx)
            if res.ok:
                self._ok[h] = (res.sender, res.nonce)
                if len(self._ok) > self.capacity:
                    self._ok.popitem(last=False)
            return res
        self.hits += 1
        sender, nonce = cached
        next_nonce = self._next_nonce(sender)
        if next_nonce is None:
            return TxCheck(Code.UNKNOWN_SENDER, "sender has no account", h, sender, nonce)
        if nonce < next_nonce:
            self._ok.pop(h, None)  # can never pass again
            return TxCheck(Code.BAD_NONCE, f"nonce {nonce} already used (next is {next_nonce})",
                           h, sender, nonce)
        return TxCheck(Code.OK, "", h, sender, nonce)

    def sender_nonce(self, tx: bytes) -> tuple[bytes, int] | None:
        """(sender address, nonce) of ``tx``, from the cache or by decoding; None if junk."""
        cached = self._ok.get(tx_hash(tx))
        if cached is not None:
            return cached
        try:
            parsed = decode_tx(tx)
        except TxDecodeError:
            return None
        return parsed.sender, parsed.nonce


def order_for_block(txs: Sequence[bytes],
                    sender_nonce: Callable[[bytes], tuple[bytes, int] | None],
                    next_nonce: Callable[[bytes], int]) -> list[bytes]:
    """The transactions a proposer should put in a block, in an order that can succeed.

    The mempool is FIFO by arrival, but one sender's transactions may arrive
    out of nonce order (concurrent RPC calls, gossip from several peers); in
    arrival order the later nonce would fail and, being committed, could
    never be resent with the same bytes. So, per sender (senders in order of
    first appearance), transactions are sorted by nonce and only the
    contiguous run starting at the account's next nonce is taken; the rest
    stay in the mempool until the gap is filled. Undecodable bytes are left
    out (they would only fail).
    """
    by_sender: dict[bytes, dict[int, bytes]] = {}
    for tx in txs:
        info = sender_nonce(tx)
        if info is None:
            continue
        sender, nonce = info
        by_sender.setdefault(sender, {}).setdefault(nonce, tx)
    out: list[bytes] = []
    for sender, txs_by_nonce in by_sender.items():
        n = next_nonce(sender)
        while n in txs_by_nonce:
            out.append(txs_by_nonce[n])
            n += 1
    return out


__all__ = ["CachedCheck", "order_for_block"]
