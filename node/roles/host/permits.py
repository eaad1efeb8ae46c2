"""Permission strings for the gateway's queries, bought in batches from the model's owner.

Every request the gateway answers first gets a :class:`Permit` from
:meth:`Permitter.permit`. A request that finds no batch in flight goes out
at once (no added wait); requests that arrive while a batch is in flight
(asked of the owner, then stored) are sent together as the next batch, so
batches grow with the load by themselves. ``window_s`` > 0 adds a wait to
gather more into each batch (fewer owner round trips, more latency):

1. assign the next seqs (the granted voucher's count is the next seq);
2. sign the new cumulative voucher, ``amount = price_per_query x count``
   (what the owner checks), with the host key;
3. send; on a grant, check every signature against the owner's key, then
   store the permission strings and the voucher in one LMDB transaction --
   only then do the waiting requests go on to run the model.

Only one batch is in flight at a time, because the next batch's first seq
depends on whether this one was granted: a refused batch leaves no gap (the
stored voucher is unchanged, its seqs are reused by the next batch). If the
owner says ``VOUCHER_STALE`` (a crash between its grant and our write, or
another process of ours), the host adopts the owner's count from the message
and tries again; ``CLAIM_PENDING`` on a batch of several is retried one query
at a time, so only the claimed query is refused.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from node.ledger.vouchers import sign_voucher, verify_permission
from node.roles.owner.protocol import (
    MAX_BATCH,
    PermissionGrant,
    PermissionRequest,
    Refusal,
    parse_stale_message,
)

from .durability import Flusher
from .store import HostStore, Permit, VoucherState

log = logging.getLogger("node.roles.host")

#: How often one batch may be re-sent after VOUCHER_STALE before its queries are refused.
MAX_RESYNCS = 2


class PermissionRefused(Exception):
    """The owner refused (``code``: a :class:`Refusal`) or no owner could be asked
    (``code`` None). Nothing was granted; the host's voucher state is unchanged."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PermissionSource(Protocol):
    """Who sells permission strings: the owner over libp2p, or a fake in tests."""

    async def request(self, req: PermissionRequest) -> PermissionGrant:
        """One batch. Raises :class:`PermissionRefused` (typed refusal or unreachable)."""
        ...


class LedgerView(Protocol):
    """The committed records the permitter reads (the node's RPC backend has them)."""

    def model(self, model_id: bytes) -> Any: ...

    def host(self, model_id: bytes, host: bytes) -> Any: ...


@dataclass
class _Waiter:
    qhash: bytes
    done: trio.Event = field(default_factory=trio.Event)
    permit: Permit | None = None
    error: PermissionRefused | None = None

    def grant(self, permit: Permit) -> None:
        self.permit = permit
        self.done.set()

    def refuse(self, error: PermissionRefused) -> None:
        self.error = error
        self.done.set()


class Permitter:
    """Batches permission requests for one model; run :meth:`run` in a nursery."""

    def __init__(self, *, store: HostStore, source: PermissionSource, ledger: LedgerView,
                 signer: Any, chain_id: str, model_id: bytes, window_s: float = 0.0,
                 max_batch: int = MAX_BATCH,
                 on_refused: Callable[[PermissionRefused], None] | None = None,
                 flusher: Flusher | None = None, wait_durable: bool = True) -> None:
        """``flusher``: the store is opened without a sync per commit and ``flusher``
        fsyncs it (docs/gateway.md "Durability"); ``wait_durable``: :meth:`durable`
        waits for the fsync (``permit_sync_ms = 0``) or returns at once."""
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be in 1..{MAX_BATCH}")
        self._store = store
        self._source = source
        self._ledger = ledger
        self._signer = signer
        self._chain_id = chain_id
        self.model_id = model_id
        self._window = window_s
        self._max_batch = max_batch
        self._on_refused = on_refused
        self._flusher = flusher
        self._wait_durable = wait_durable
        self._queue: list[_Waiter] = []
        self._wakeup = trio.Event()
        self.batches = 0
        """Permission requests sent (for stats and tests)."""

    @property
    def host(self) -> bytes:
        return self._signer.address

    async def permit(self, qhash: bytes) -> Permit:
        """A stored permission string for ``qhash``, bought in the next batch.

        Raises:
            PermissionRefused: the owner refused, or no owner answered.
        """
        waiter = _Waiter(qhash)
        self._queue.append(waiter)
        self._wakeup.set()
        try:
            await waiter.done.wait()
        except trio.Cancelled:
            if waiter in self._queue:  # not sent yet: nobody pays for a query not asked
                self._queue.remove(waiter)
            raise
        if waiter.error is not None:
            raise waiter.error
        assert waiter.permit is not None
        return waiter.permit

    async def durable(self, ticket: int) -> None:
        """Return once the permission written with ``ticket`` may be relied on for an
        answer: on disk (``wait_durable``), or at once."""
        if self._flusher is not None and self._wait_durable:
            await self._flusher.wait(ticket)

    async def run(self) -> None:
        """Gather and send batches, one at a time, forever."""
        while True:
            if not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            if self._window > 0 and len(self._queue) < self._max_batch:
                await trio.sleep(self._window)
            batch, self._queue = (self._queue[:self._max_batch],
                                  self._queue[self._max_batch:])
            await self._process(batch)

    async def _process(self, batch: list[_Waiter]) -> None:
        try:
            await self._buy(batch)
            return
        except PermissionRefused as exc:
            refusal = exc
        except Exception as exc:
            # a bug or a failed disk write: the waiting requests must get an answer and
            # the loop must go on (the next batch re-syncs with the owner if need be)
            log.exception("permission batch of %d failed", len(batch))
            refusal = PermissionRefused(None, f"the gateway could not obtain a permission "
                                              f"({type(exc).__name__})")
        if refusal.code == Refusal.CLAIM_PENDING and len(batch) > 1:
            for waiter in batch:  # find the claimed query: the others still get theirs
                await self._process([waiter])
            return
        if self._on_refused is not None:
            self._on_refused(refusal)
        for waiter in batch:
            waiter.refuse(refusal)

    def _price(self) -> tuple[int, bytes]:
        model = self._ledger.model(self.model_id)
        if model is None:
            raise PermissionRefused(None, f"model {self.model_id!r} is not registered on chain")
        return int(model.price_per_query), bytes(model.owner_pubkey)

    def _voucher(self, count: int, price: int) -> VoucherState:
        amount = price * count
        sig = sign_voucher(self._signer, self._chain_id, self.model_id, count, amount)
        return VoucherState(count, amount, sig)

    async def _buy(self, batch: list[_Waiter]) -> None:
        """Send ``batch`` (re-syncing after VOUCHER_STALE) and store what is granted."""
        price, owner_pubkey = self._price()
        for attempt in range(MAX_RESYNCS + 1):
            first = self._store.voucher(self.model_id).count
            new = self._voucher(first + len(batch), price)
            req = PermissionRequest(model_id=self.model_id, host=self.host, first_seq=first,
                                    query_hashes=tuple(w.qhash for w in batch),
                                    cumulative_count=new.count, cumulative_amount=new.amount,
                                    voucher_signature=new.signature)
            self.batches += 1
            try:
                grant = await self._source.request(req)
            except PermissionRefused as exc:
                latest = parse_stale_message(exc.message) \
                    if exc.code == Refusal.VOUCHER_STALE else None
                if latest is None or attempt == MAX_RESYNCS:
                    raise
                log.info("owner's voucher count is %d, ours %d: re-syncing", latest, first)
                self._store.resync(self.model_id, self._voucher(latest, price))
                continue
            await self._store_grant(req, grant, new, owner_pubkey, batch)
            return

    async def _store_grant(self, req: PermissionRequest, grant: PermissionGrant, new: VoucherState,
                     owner_pubkey: bytes, batch: list[_Waiter]) -> None:
        if len(grant.signatures) != len(batch):
            self._store.resync(self.model_id, new)  # the owner holds the voucher regardless
            raise PermissionRefused(None, "owner's grant has the wrong number of signatures")
        permits = [(w.qhash, Permit(seq, grant.issued_height, sig))
                   for w, seq, sig in zip(batch, req.seqs, grant.signatures, strict=True)]
        bad = [p.seq for q, p in permits
               if not verify_permission(owner_pubkey, self._chain_id, self.model_id, self.host,
                                        p.seq, q, p.signature,
                                        issued_height=p.issued_height)]
        if bad:
            self._store.resync(self.model_id, new)
            raise PermissionRefused(None, f"owner's permission strings do not verify "
                                          f"(seqs {bad[:4]})")
        if self._flusher is None:
            # a synced store: the fsync (milliseconds on a busy disk) runs in a worker
            # thread so it does not stall the gateway's other requests
            await trio.to_thread.run_sync(self._store.record_grant, self.model_id, new,
                                          permits)
        else:
            # written (survives a crash of this process) before any model runs; the
            # flusher's fsync overlaps the generation and answers wait for it (durable)
            self._store.record_grant(self.model_id, new, permits)
            ticket = self._flusher.wrote()
            permits = [(q, dataclasses.replace(p, ticket=ticket)) for q, p in permits]
        for waiter, (_q, permit) in zip(batch, permits, strict=True):
            waiter.grant(permit)


__all__ = ["LedgerView", "PermissionRefused", "PermissionSource", "Permitter"]
