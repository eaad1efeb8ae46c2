"""One sender's pending transactions, and which of them a block could include now.

A sender's transaction is *executable* when its nonce is the account's next
nonce or continues the unbroken run of pending nonces from there, and
*future* otherwise: it waits for a lower nonce that is not in the pool. The
pool's fairness rules (evict future transactions first, cap them per
sender, expire them sooner) need that split on every admission, so it is
kept incrementally here: an admission or removal costs O(1) amortised, not
a scan of the sender's transactions. Pure: no clock, no IO.
"""

from __future__ import annotations


class SenderTxs:
    """Pending transactions of one sender, split into executable and future ones.

    ``account`` is the sender's next nonce as last seen (None: unknown, and
    then every transaction counts as executable). ``run_end`` is the first
    nonce after the unbroken run of pending nonces starting at ``account``;
    a transaction is future iff its nonce is above it. A nonce below
    ``account`` is stale (used by a committed block) and counts as
    executable until the pool's recheck evicts it.
    """

    __slots__ = ("account", "by_nonce", "cost", "future", "run_end", "txs")

    def __init__(self) -> None:
        self.txs: dict[bytes, int] = {}              # hash -> nonce
        self.by_nonce: dict[int, list[bytes]] = {}   # nonce -> hashes (a nonce may repeat)
        self.account: int | None = None
        self.run_end: int | None = None
        self.future: set[bytes] = set()
        self.cost = 0                                # what the pending txs debit in total

    def __len__(self) -> int:
        return len(self.txs)

    def would_be_future(self, nonce: int) -> bool:
        """Whether a new transaction with ``nonce`` would wait for a gap."""
        return self.run_end is not None and nonce > self.run_end

    def add(self, h: bytes, nonce: int, cost: int) -> None:
        self.txs[h] = nonce
        self.by_nonce.setdefault(nonce, []).append(h)
        self.cost += cost
        if self.run_end is None:
            return
        if nonce > self.run_end:
            self.future.add(h)
        elif nonce == self.run_end:
            self._extend()

    def remove(self, h: bytes, cost: int, *, keep_run: bool = False) -> None:
        """Forget ``h``; if it was inside the run, what followed it becomes future.

        ``keep_run``: leave the split as it is, for a caller that removes many
        transactions and then calls :meth:`reclassify` once (a block's worth of
        removals would otherwise cost the length of the run each).
        """
        nonce = self.txs.pop(h)
        same = self.by_nonce[nonce]
        same.remove(h)
        if not same:
            del self.by_nonce[nonce]
        self.cost -= cost
        if h in self.future:
            self.future.discard(h)
            return
        if not keep_run and self.run_end is not None and self.account is not None \
                and self.account <= nonce < self.run_end and nonce not in self.by_nonce:
            for n in range(nonce + 1, self.run_end):
                self.future.update(self.by_nonce.get(n, ()))
            self.run_end = nonce

    def set_account(self, account: int | None) -> None:
        """The account's next nonce as the ledger reports it now (None: no news)."""
        if account is not None and account != self.account:
            self.account = account
            self.reclassify()

    def reclassify(self) -> None:
        """Recompute the split from ``account``: O(transactions of this sender)."""
        if self.account is None:
            return
        self.run_end = self.account
        self._extend()
        self.future = {h for h, n in self.txs.items() if n > self.run_end}

    def _extend(self) -> None:
        """Grow the run over the nonces now present; they stop being future."""
        assert self.run_end is not None
        n = self.run_end
        while n in self.by_nonce:
            self.future.difference_update(self.by_nonce[n])
            n += 1
        self.run_end = n


__all__ = ["SenderTxs"]
