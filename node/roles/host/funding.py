"""Keeping the fee channel funded: ``fund_channel`` from a configured budget.

The owner signs permissions only while the host's unredeemed vouchers fit in
its escrow, so the gateway watches ``available = escrow - (voucher amount -
redeemed)`` (from the committed host record and the host's own voucher)
and tops up with ``fund_amount`` when it falls below ``fund_threshold``,
and at once when the owner refuses with ``ESCROW_EXHAUSTED``. Never more
than ``fund_budget`` in total over the role's life: the total is recorded
in the role's LMDB *before* the transaction is sent, so a crash can leave
budget unspent but never spend it twice. One top-up is in flight at a time.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from node.ledger.records import HostStatus
from node.ledger.txs import FundChannelBody

from ..txsender import TxSendError
from .store import HostStore

log = logging.getLogger("node.roles.host")

CHECK_INTERVAL_S = 5.0


class ChannelFunder:
    def __init__(self, *, store: HostStore, ledger: Any, txs: Any, model_id: bytes,
                 host: bytes, budget: int, threshold: int, amount: int) -> None:
        self._store = store
        self._ledger = ledger
        self._txs = txs
        self._model_id = model_id
        self._host = host
        self.budget = budget
        self.threshold = threshold
        self.amount = amount
        self._pending: bytes | None = None
        self._wakeup = trio.Event()
        self._warned = False

    def available(self) -> int | None:
        """Escrow the owner may still sign against, or None without an active access."""
        rec = self._ledger.host(self._model_id, self._host)
        if rec is None or rec.status != HostStatus.ACTIVE:
            return None
        unredeemed = max(0, self._store.voucher(self._model_id).amount - rec.redeemed_amount)
        return rec.escrow - unredeemed

    def wake(self) -> None:
        """The owner said ESCROW_EXHAUSTED (or a block was committed): check now."""
        self._wakeup.set()

    async def run(self) -> None:
        if not self.budget or not self.amount:
            return
        while True:
            self._wakeup = trio.Event()
            try:
                await self.check()
            except Exception:  # a backend failure must not end the role: try again later
                log.exception("fee channel check failed")
            with trio.move_on_after(CHECK_INTERVAL_S):
                await self._wakeup.wait()

    async def check(self) -> bytes | None:
        """Send one top-up if one is due; returns its tx hash."""
        if self._pending is not None:
            if self._txs.result(self._pending) is None:
                return None  # the last top-up is not committed yet
            self._pending = None
        available = self.available()
        if available is None or available >= self.threshold:
            return None
        amount = min(self.amount, self.budget - self._store.funded())
        if amount <= 0:
            if not self._warned:
                log.warning("fee escrow is low (%d available) and fund_budget %d is spent",
                            available, self.budget)
                self._warned = True
            return None
        self._store.add_funded(amount)
        try:
            self._pending = await self._txs.send(FundChannelBody(model_id=self._model_id,
                                                                 amount=amount))
        except TxSendError as exc:
            self._store.add_funded(-amount)  # refused by the mempool: nothing was spent
            log.warning("fund_channel of %d refused: %s", amount, exc)
            return None
        log.info("escrow low (%d available): fund_channel %d (funded %d of budget %d)",
                 available, amount, self._store.funded(), self.budget)
        return self._pending


__all__ = ["ChannelFunder"]
