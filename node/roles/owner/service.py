"""The owner role as a daemon service: sell permission strings for vouchers, then get paid.

Three jobs share one :class:`OwnerStore`:

- **grant**: the ``/oml/permission/1`` handler. Rate limit (per peer), parse,
  then :func:`decide` on the committed ledger records, the stored voucher and
  the claims pending in this node's mempool. A grant queues the host's new
  voucher for the :class:`GrantJournal` (an fsync'd LMDB commit shared by
  the grants that arrive meanwhile), signs one permission per query hash,
  dated with the chain height, while the commit runs, and answers only once
  the voucher is durable. Requests for one (model, host) pair are served one
  at a time (a per-pair lock held until the grant is durable), so their seqs
  are strictly increasing and none is signed twice; the store checks that
  again inside its write transaction.
- **redeem**: a loop cashes a pair's latest voucher with a ``redeem``
  transaction when its unredeemed amount reaches ``redeem_threshold``, at
  once when the host is unbonding (its ``begin_withdrawal`` committed: the
  unbonding delay is the owner's window to settle), and for every pair at
  shutdown (bounded by ``shutdown_redeem_ms``). Exactly once: the signed
  transaction is stored before it is submitted, and re-submitted (the same
  bytes) until it commits, across restarts.
- **follow**: the durable chain cursor sees committed redeems (clears the
  pending one, records the result) and ``begin_withdrawal`` of a host of an
  owned model (wakes the redeem loop).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from consensus.crypto import PrivateKey
from net import HandlerError
from node.config import OwnerRole
from node.ledger.errors import Code
from node.ledger.records import HostStatus
from node.ledger.txs import Kind, RedeemBody, tx_hash
from node.rpc.methods import Context, Method
from node.rpc.params import HexBytes, Param

from ..cursor import ChainFollower, CommittedBlock
from ..txsender import TxSendError
from .decide import Grant, Replay, decide
from .journal import GrantJournal, JournalClosed
from .pending import PendingClaims
from .protocol import (
    PROTOCOL,
    PermissionGrant,
    PermissionProtocolError,
    PermissionRequest,
    Refusal,
    decode_request,
    encode_grant,
    stale_message,
)
from .ratelimit import RateLimiter
from .signing import PermissionSigner
from .store import (
    GrantEntry,
    Held,
    LastRedeem,
    OwnerStore,
    OwnerStoreError,
    PendingRedeem,
    pair_key,
)

if TYPE_CHECKING:
    import lmdb

    from ..base import RoleContext

log = logging.getLogger("node.roles.owner")

SIGN_IN_THREAD_FROM = 32
"""Batches of at least this many permissions are signed in a worker thread."""


class OwnerService:
    """One node's permission service for the models its account owns."""

    name = "owner"

    def __init__(self, *, store: OwnerStore, follower: ChainFollower, transport: Any,
                 backend: Any, chain: Any, account_seed: bytes, chain_id: str,
                 config: OwnerRole,
                 txs: Any, mempool_txs: Callable[[], Iterable[bytes]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._follower = follower
        self._transport = transport
        self._backend = backend
        self._chain = chain
        self._signer = PermissionSigner(account_seed, chain_id)
        self.address = PrivateKey(account_seed).address
        self.chain_id = chain_id
        self._config = config
        self._txs = txs
        self._claims = PendingClaims(mempool_txs, self._claim_target)
        self._clock = clock
        self._limiter = RateLimiter(config.rate_per_s, config.rate_burst)
        self._locks: dict[bytes, trio.Lock] = {}
        self.journal = GrantJournal(store)
        self._wake = trio.Event()
        self._serving = False
        self._errors: dict[bytes, str] = {}
        self.stats: Counter[str] = Counter()

    def _claim_target(self, claim_id: int) -> tuple[bytes, bytes] | None:
        """(model_id, host) of a committed claim, for the pending-claims scan."""
        record = self._backend.claim(claim_id)
        if record is None:
            return None
        return record.model_id, record.host  # type: ignore[attr-defined]

    @classmethod
    def from_context(cls, ctx: RoleContext) -> OwnerService:
        store = OwnerStore.open(ctx.role_dir("owner"))
        # A fresh cursor starts at the next block: with no vouchers yet, older
        # withdrawals and redeems concern this owner service not at all.
        follower = ChainFollower(store.db, ctx.chain, start_height=ctx.chain.height + 1)
        ctx.on_committed(follower.notify)
        mempool = ctx.backend.mempool
        return cls(store=store, follower=follower, transport=ctx.transport,
                   backend=ctx.backend, chain=ctx.chain,
                   account_seed=ctx.account_seed, chain_id=ctx.chain.chain_id,
                   config=ctx.config.roles.owner, txs=ctx.txs,
                   mempool_txs=lambda: iter(mempool))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            self._transport.set_handler(PROTOCOL, self.handle)
            self._serving = True
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.journal.run)
                nursery.start_soon(self._follower.follow, self._on_block)
                nursery.start_soon(self._redeem_loop)
                task_status.started()
        finally:
            self._serving = False
            await self._settle_at_shutdown()
            self.store.close()

    async def _settle_at_shutdown(self) -> None:
        """Redeem every unredeemed voucher, waiting at most ``shutdown_redeem_ms`` for it.

        Shielded from the cancellation that stops the node; whatever does not
        commit in time stays stored and is re-submitted at the next start.
        """
        deadline = trio.current_time() + self._config.shutdown_redeem_ms / 1000
        with trio.CancelScope(shield=True, deadline=deadline):
            try:
                await self.settle(force=True)
                while self._pending_uncommitted():
                    await trio.sleep(0.05)
            except Exception:  # best effort: never let it mask the shutdown
                log.exception("redeem at shutdown failed")

    def _pending_uncommitted(self) -> bool:
        for model_id, host, _held in self.store.pairs():
            pending = self.store.pending(model_id, host)
            if pending is not None and self._txs.result(tx_hash(pending.tx)) is None:
                return True
        return False

    # ------------------------------------------------------------------ granting

    async def handle(self, peer: str, data: bytes) -> bytes:
        """Answer one ``/oml/permission/1`` request (a refusal is a typed HandlerError)."""
        self.stats["requests"] += 1
        if not self._serving:
            raise self._refuse(Refusal.NOT_OWNER, "the owner service is stopping")
        if not self._limiter.allow(peer, self._clock()):
            raise self._refuse(Refusal.RATE_LIMITED,
                               f"over {self._config.rate_per_s} requests/s from this peer")
        try:
            request = decode_request(data)
        except PermissionProtocolError as exc:
            raise self._refuse(Refusal.BAD_REQUEST, str(exc)) from None
        if len(request.query_hashes) > self._config.max_batch:
            raise self._refuse(Refusal.BAD_REQUEST,
                               f"this owner takes at most {self._config.max_batch} "
                               f"query hashes per request")
        key = pair_key(request.model_id, request.host)
        lock = self._locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                height, held, signatures = await self._grant(request)
        finally:
            if not lock.statistics().tasks_waiting and not lock.locked():
                self._locks.pop(key, None)  # idle pairs cost nothing
        if held is not None:
            self.stats["granted_batches"] += 1
            self.stats["permissions"] += len(signatures)
            self._maybe_redeem(request, held)
        else:
            self.stats["replayed_batches"] += 1
        return encode_grant(PermissionGrant(issued_height=height, signatures=signatures))

    async def _grant(self, request: PermissionRequest
                     ) -> tuple[int, Held | None, tuple[bytes, ...]]:
        """Decide, queue the voucher, sign while it is written, return once it is durable.

        Returns (issued_height, what is now held or None for a replay, signatures).
        """
        model = self._backend.model(request.model_id)
        host = self._backend.host(request.model_id, request.host)
        held = self.store.held(request.model_id, request.host)
        claims = self._claims.hashes(request.model_id, request.host)
        verdict = decide(request, chain_id=self.chain_id, owner=self.address, model=model,
                         host=host, stored=held.voucher if held else None,
                         pending_claims=claims,
                         last_batch=held.last_batch if held else None)
        if isinstance(verdict, Replay):
            return verdict.issued_height, None, await self._sign(request,
                                                                 verdict.issued_height)
        if not isinstance(verdict, Grant):
            raise self._refuse(verdict.code, verdict.message)
        height = self._chain.height
        pending = self.journal.submit(GrantEntry(
            model_id=request.model_id, host=request.host, voucher=verdict.voucher,
            first_seq=request.first_seq, query_hashes=request.query_hashes,
            issued_height=height))
        # Shielded: the pair's lock is held until the voucher is durable (or failed),
        # even if this request is cancelled, so the next request sees it stored.
        with trio.CancelScope(shield=True):
            signatures = await self._sign(request, height)
            try:
                stored = await pending.wait()
            except JournalClosed as exc:
                raise self._refuse(Refusal.NOT_OWNER, str(exc)) from None
            except OwnerStoreError as exc:  # unreachable under the pair lock; never signs twice
                latest = self.store.held(request.model_id, request.host)
                count = latest.voucher.cumulative_count if latest else 0
                raise self._refuse(Refusal.VOUCHER_STALE, stale_message(count, str(exc))) \
                    from None
        return height, stored, signatures

    async def _sign(self, request: PermissionRequest, height: int) -> tuple[bytes, ...]:
        """Sign in a worker thread for big batches (libsodium releases the GIL)."""
        if len(request.query_hashes) < SIGN_IN_THREAD_FROM:
            return self.sign_batch(request, height)
        return await trio.to_thread.run_sync(self.sign_batch, request, height)

    def sign_batch(self, request: PermissionRequest, height: int) -> tuple[bytes, ...]:
        """One permission per query hash, seq ``first_seq + i``, dated ``height``."""
        return self._signer.sign_batch(request.model_id, request.host, request.first_seq,
                                       request.query_hashes, height)

    def _refuse(self, code: Refusal, message: str) -> HandlerError:
        self.stats[f"refused_{code.name.lower()}"] += 1
        return HandlerError(int(code), message)

    def _maybe_redeem(self, request: PermissionRequest, held: Held) -> None:
        host = self._backend.host(request.model_id, request.host)
        redeemed = host.redeemed_amount if host is not None else 0
        if held.voucher.cumulative_amount - redeemed >= max(1, self._config.redeem_threshold):
            self._wake.set()

    # ------------------------------------------------------------------ redeeming

    async def _redeem_loop(self) -> None:
        # Re-submit what was in flight when the node stopped, then settle on every wake-up.
        while True:
            await self.settle(force=False)
            self._limiter.prune(self._clock())
            with trio.move_on_after(self._config.retry_interval_ms / 1000):
                await self._wake.wait()
            self._wake = trio.Event()

    async def settle(self, *, force: bool) -> None:
        """Redeem every pair that is due (all with anything unredeemed when ``force``)."""
        for model_id, host, held in list(self.store.pairs()):
            try:
                await self._settle_pair(model_id, host, held, force=force)
            except TxSendError as exc:
                self._errors[pair_key(model_id, host)] = str(exc)
                log.warning("redeem for model %s host %s refused: %s", model_id.hex()[:16],
                            host.hex()[:16], exc)

    async def _settle_pair(self, model_id: bytes, host: bytes, held: Held, *,
                           force: bool) -> None:
        pending = self.store.pending(model_id, host)
        if pending is not None:
            if self._txs.result(tx_hash(pending.tx)) is not None:
                return  # committed; the follower records it
            try:
                await self._txs.submit(pending.tx)
                return
            except TxSendError as exc:
                # Refused now (its nonce was taken, or the ledger would reject it):
                # it can never commit, so a fresh redeem may be signed.
                self.store.drop_pending(model_id, host)
                if exc.code != Code.BAD_NONCE:
                    raise
        record = self._backend.host(model_id, host)
        if record is None:
            return
        voucher = held.voucher
        owed = voucher.cumulative_amount - record.redeemed_amount
        if owed <= 0 or record.escrow == 0 or voucher.cumulative_count < record.redeemed_count:
            return
        urgent = force or record.status == HostStatus.UNBONDING
        if not urgent and owed < self._config.redeem_threshold:
            return
        tx = await self._txs.sign(RedeemBody(
            model_id=model_id, host=host, cumulative_count=voucher.cumulative_count,
            cumulative_amount=voucher.cumulative_amount, signature=voucher.signature))
        self.store.put_pending(model_id, host, PendingRedeem(
            tx=tx, cumulative_count=voucher.cumulative_count,
            cumulative_amount=voucher.cumulative_amount))
        log.info("redeeming model %s host %s: count %d amount %d (%d owed%s)",
                 model_id.hex()[:16], host.hex()[:16], voucher.cumulative_count,
                 voucher.cumulative_amount, owed, ", host unbonding" if urgent else "")
        try:
            await self._txs.submit(tx)
        except TxSendError:
            self.store.drop_pending(model_id, host)
            raise
        self._errors.pop(pair_key(model_id, host), None)

    def _on_block(self, block: CommittedBlock, txn: lmdb.Transaction) -> None:
        """Record our committed redeems; wake the redeem loop for a withdrawing host."""
        for committed in block.txs:
            tx = committed.tx
            if tx.kind == Kind.REDEEM and tx.sender == self.address:
                body = tx.body
                pending = self.store.pending(body.model_id, body.host, txn)  # type: ignore
                if pending is not None and tx_hash(pending.tx) == committed.hash:
                    self.store.drop_pending(body.model_id, body.host, txn)  # type: ignore
                self.store.put_last(body.model_id, body.host, LastRedeem(  # type: ignore
                    tx_hash=committed.hash, height=block.height, code=committed.code,
                    cumulative_count=body.cumulative_count,  # type: ignore[union-attr]
                    cumulative_amount=body.cumulative_amount), txn)  # type: ignore
                self._wake.set()
            elif tx.kind == Kind.BEGIN_WITHDRAWAL and committed.ok:
                model = self._backend.model(tx.body.model_id)  # type: ignore[union-attr]
                if model is not None and model.owner == self.address:
                    log.info("host %s begins withdrawing from model %s: settling its vouchers",
                             tx.sender.hex()[:16], model.model_id.hex()[:16])
                    self._wake.set()

    # ------------------------------------------------------------------ RPC

    def vouchers(self, model_id: bytes | None = None, host: bytes | None = None
                 ) -> dict[str, Any]:
        """Per (model, host): the latest voucher held, what the chain redeemed, the rest."""
        rows = []
        for m, h, held in self.store.pairs():
            if (model_id is not None and m != model_id) or (host is not None and h != host):
                continue
            record = self._backend.host(m, h)
            pending = self.store.pending(m, h)
            last = self.store.last(m, h)
            redeemed = record.redeemed_amount if record is not None else 0
            rows.append({
                "model_id": m.hex(), "host": h.hex(),
                "cumulative_count": held.voucher.cumulative_count,
                "cumulative_amount": held.voucher.cumulative_amount,
                "permissions_issued": held.permitted,
                "updated_height": held.updated_height,
                "redeemed_amount": redeemed,
                "redeemed_count": record.redeemed_count if record is not None else 0,
                "unredeemed": max(0, held.voucher.cumulative_amount - redeemed),
                "escrow": record.escrow if record is not None else 0,
                "host_status": HostStatus(record.status).name.lower()
                if record is not None else "unknown",
                "pending_redeem": tx_hash(pending.tx).hex() if pending else None,
                "last_redeem": last.to_json() if last else None,
                "last_error": self._errors.get(pair_key(m, h)),
            })
        return {"owner": self.address.hex(), "redeem_threshold": self._config.redeem_threshold,
                "vouchers": rows, "stats": dict(sorted(self.stats.items()))}

    def rpc_methods(self) -> Sequence[Method]:
        async def owner_vouchers(_ctx: Context, model_id: bytes | None = None,
                                 host: bytes | None = None) -> Any:
            return self.vouchers(model_id, host)

        return (
            Method("owner_vouchers", owner_vouchers,
                   (Param("model_id", HexBytes(1, 64), "only this model (hex)", False),
                    Param("host", HexBytes(20, 20), "only this host address (hex)", False)),
                   {"type": "object", "description":
                    "owner, redeem_threshold, vouchers (per model and host: "
                    "cumulative_count, cumulative_amount, permissions_issued, "
                    "updated_height, redeemed_amount, redeemed_count, unredeemed, escrow, "
                    "host_status, pending_redeem, last_redeem, last_error), stats"},
                   "The owner role's vouchers: latest held per host, redeemed on chain, "
                   "unredeemed, permissions issued."),
        )


__all__ = ["OwnerService"]
