"""The transaction pool: pending transactions waiting for a proposer.

Pure and synchronous: no clock, no socket, no disk. The daemon injects the
check callback (the ledger's ``check_tx``, or :class:`node.txcheck.CachedCheck`),
feeds transactions in from RPC and gossip, reaps them into proposals and
calls :meth:`Mempool.update` after every committed block. Keeping IO out makes
every rule here testable with plain calls and keeps the pool deterministic
given its inputs.

Rules, in the order :meth:`Mempool.add` applies them (cheap ones first, the
signature-verifying check callback as late as possible):

1. a transaction larger than ``max_tx_bytes`` is ``TOO_LARGE``;
2. one already pending, or committed recently, is a ``DUPLICATE`` (the
   committed-hash cache stops a re-gossiped old transaction from coming back);
3. a pool at ``max_txs``/``max_bytes`` holding no future transaction (see
   below) is ``FULL``;
4. the check callback decides ``REJECTED(code, log)``;
5. per-sender rules, when the outcome reports ``sender`` and ``nonce``: a
   sender at ``max_txs_per_sender`` pending, or adding a future transaction
   with ``max_future_txs_per_sender`` future ones already pending, is ``FULL``
   (code :data:`CODE_SENDER_FULL`); one whose pending transactions already
   spend its balance is ``REJECTED`` (code :data:`CODE_OVERSPENT`);
6. a full pool makes room for an *executable* transaction by evicting
   future ones (the sender with most future transactions loses its highest
   nonce first); a future transaction never evicts anything, so one sender's
   far-future spam cannot keep anyone else's ready transactions out;
7. otherwise ``ACCEPTED``.

**Executable and future.** A sender's transaction is *executable* if its
nonce is the account's next nonce or continues an unbroken run of pending
nonces from there; any other is *future* (it waits for a gap to fill). The
account's next nonce comes from the outcome's ``account_nonce`` (CachedCheck
reports it) or from the ``next_nonce`` callback; without either, the
sender's transactions all count as executable.

**Expiry.** :meth:`update` drops a transaction that has waited
``ttl_blocks`` blocks, and a future one after ``future_ttl_blocks`` (0 turns a
limit off). Heights are the pool's clock, so expiry is deterministic.

Rejections are not cached: a transaction whose nonce is ahead of the account
today may be valid after the next block.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from node.config import MempoolSection

from .senders import SenderTxs

#: Result codes of :class:`AddResult`, in codespace ``"mempool"``. Code 0 is
#: success; a ``REJECTED`` result carries the check callback's own code (in the
#: ledger's codespace) instead.
CODE_OK = 0
CODE_DUPLICATE = 1
CODE_FULL = 2
CODE_TOO_LARGE = 3
CODE_SENDER_FULL = 4
CODE_OVERSPENT = 5


class CheckOutcome(Protocol):
    """What the injected check callback returns (the ledger's ``TxCheck`` fits).

    ``code`` 0 means the transaction may enter the pool; anything else is a
    rejection explained by ``log``. Optional attributes the pool uses when
    present: ``sender`` and ``nonce`` (per-sender rules, fast recheck),
    ``account_nonce`` (the sender's next nonce as the check saw it: tells
    executable from future transactions), ``cost`` and ``balance`` (what the
    transaction debits from the sender, and what the sender has).
    """

    @property
    def code(self) -> int: ...

    @property
    def log(self) -> str: ...


CheckFn = Callable[[bytes], CheckOutcome]
#: ``next_nonce(sender) -> the account's next nonce``, or None if it has no account.
NextNonceFn = Callable[[bytes], "int | None"]


class MempoolError(Exception):
    """Our own misuse of the pool (bad arguments, updates out of order)."""


class AddStatus(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    FULL = "full"
    TOO_LARGE = "too_large"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """The outcome of :meth:`Mempool.add`.

    ``code``/``log``/``codespace`` follow CometBFT's CheckTx response so the
    RPC layer can pass them through unchanged: code 0 is success; pool
    refusals use codespace ``"mempool"``; a check-callback rejection keeps the
    callback's code, with the code's enum name as codespace (the ledger's
    convention, e.g. ``"bad_nonce"``) or ``"ledger"`` for a plain int.
    ``evicted``: future transactions dropped to make room for this one.
    """

    status: AddStatus
    tx_hash: bytes
    code: int = CODE_OK
    log: str = ""
    codespace: str = ""
    evicted: tuple[bytes, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status is AddStatus.ACCEPTED


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateReport:
    """What :meth:`Mempool.update` did.

    ``removed``: committed transactions that were pending; ``evicted``: those
    the recheck found invalid now; ``expired``: those past their TTL.
    """

    height: int
    removed: int
    evicted: tuple[bytes, ...]
    expired: tuple[bytes, ...] = ()


def tx_hash(tx: bytes) -> bytes:
    """SHA-256 of the raw transaction bytes: the id used by the pool and RPC."""
    return hashlib.sha256(tx).digest()


def _int_attr(obj: object, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _full(h: bytes, log: str, code: int = CODE_FULL) -> AddResult:
    return AddResult(status=AddStatus.FULL, tx_hash=h, code=code, codespace="mempool", log=log)


class Mempool:
    """FIFO pool of checked transactions with dedupe, caps, per-sender fairness and expiry.

    Args:
        config: caps, per-sender limits and TTLs (see :class:`MempoolSection`).
        check: called with the raw transaction on add and on every recheck.
        next_nonce: optional fast recheck. If the check outcome reports
            ``sender`` and ``nonce`` (the ledger's ``TxCheck`` does), a pending
            tx is rechecked after a block as "is ``nonce`` still >=
            ``next_nonce(sender)``" (None = the sender is gone) instead of
            re-running ``check``, which would verify its signature again. For the
            ledger that is exactly what ``check_tx`` re-decides after a block
            (its other checks are stateless), at one account read per sender.
            It also tells executable from future transactions when the
            outcome carries no ``account_nonce``.
        committed_cache_size: how many recently committed hashes are
            remembered to refuse re-gossiped transactions.
        hasher: transaction id function; must match the ledger's tx hash.
    """

    def __init__(self, config: MempoolSection, check: CheckFn, *,
                 next_nonce: NextNonceFn | None = None,
                 committed_cache_size: int = 100_000,
                 hasher: Callable[[bytes], bytes] = tx_hash) -> None:
        if committed_cache_size < 0:
            raise MempoolError("committed_cache_size must not be negative")
        self._config = config
        self._check = check
        self._next_nonce = next_nonce
        self._hash = hasher
        # Insertion-ordered: iteration order is arrival order (FIFO).
        self._txs: dict[bytes, bytes] = {}
        # (sender, nonce) from the check outcome, when it reports them.
        self._meta: dict[bytes, tuple[bytes, int]] = {}
        self._cost: dict[bytes, int] = {}           # hash -> what it debits, when reported
        self._added: dict[bytes, int] = {}          # hash -> pool height when admitted
        self._senders: dict[bytes, SenderTxs] = {}
        self._nfuture = 0                           # future txs over all senders
        self._bytes = 0
        self._committed: OrderedDict[bytes, None] = OrderedDict()
        self._committed_cap = committed_cache_size
        self._height = 0
        #: called after admitting a transaction a block could include now (not a
        #: future one); the consensus driver uses it to stop waiting for txs
        self.on_ready: Callable[[], None] | None = None

    # --- inspection -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs

    def __iter__(self) -> Iterator[bytes]:
        """Pending transactions in arrival order (for gossip to new peers)."""
        return iter(list(self._txs.values()))

    @property
    def size_bytes(self) -> int:
        """Total bytes of pending transactions."""
        return self._bytes

    @property
    def height(self) -> int:
        """Height of the last block passed to :meth:`update` (0 before any)."""
        return self._height

    @property
    def ready(self) -> int:
        """Pending transactions that a block could include now (not future ones).

        The consensus driver waits on this, not on ``len``, before proposing
        when empty blocks are off: a pool of future transactions only would
        otherwise make empty blocks until they expire.
        """
        return len(self._txs) - self._nfuture

    def is_future(self, tx_hash: bytes) -> bool:
        """True if the pending transaction waits for a lower nonce of its sender."""
        meta = self._meta.get(tx_hash)
        return meta is not None and tx_hash in self._senders[meta[0]].future

    def sender_count(self, sender: bytes) -> int:
        """Pending transactions of ``sender`` (as reported by the check outcome)."""
        s = self._senders.get(sender)
        return 0 if s is None else len(s)

    def get(self, tx_hash: bytes) -> bytes | None:
        return self._txs.get(tx_hash)

    def recently_committed(self, tx_hash: bytes) -> bool:
        return tx_hash in self._committed

    # --- mutation ---------------------------------------------------------

    def add(self, tx: bytes) -> AddResult:
        """Check ``tx`` and keep it if it passes; see the module docstring for the order."""
        if not isinstance(tx, (bytes, bytearray)):
            raise MempoolError("tx must be bytes")
        tx = bytes(tx)
        h = self._hash(tx)
        cfg = self._config
        if len(tx) > cfg.max_tx_bytes:
            return AddResult(status=AddStatus.TOO_LARGE, tx_hash=h, code=CODE_TOO_LARGE,
                             codespace="mempool",
                             log=f"tx of {len(tx)} bytes exceeds max_tx_bytes {cfg.max_tx_bytes}")
        if h in self._txs:
            return AddResult(status=AddStatus.DUPLICATE, tx_hash=h, code=CODE_DUPLICATE,
                             codespace="mempool", log="tx already in mempool")
        if h in self._committed:
            return AddResult(status=AddStatus.DUPLICATE, tx_hash=h, code=CODE_DUPLICATE,
                             codespace="mempool", log="tx already committed")
        if not self._fits(len(tx)) and not self._nfuture:
            return _full(h, self._full_log())
        outcome = self._check(tx)
        if outcome.code != 0:
            # The ledger's codes are an IntEnum whose name is its codespace (see its docs).
            name = getattr(outcome.code, "name", None)
            return AddResult(status=AddStatus.REJECTED, tx_hash=h, code=int(outcome.code),
                             codespace=name.lower() if isinstance(name, str) else "ledger",
                             log=outcome.log)
        sender, nonce = getattr(outcome, "sender", None), _int_attr(outcome, "nonce")
        cost = _int_attr(outcome, "cost") or 0
        queue: SenderTxs | None = None
        future = False
        if isinstance(sender, bytes) and sender and nonce is not None:
            queue = self._queue(sender, outcome)
            refused = self._sender_rules(h, queue, nonce, cost, outcome)
            if refused is not None:
                return refused
            future = queue.would_be_future(nonce)
        victims: list[bytes] = []
        if not self._fits(len(tx)):
            found = None if future else self._victims(len(tx))
            if found is None:
                return _full(h, self._full_log())
            victims = found
            for v in victims:
                self._drop(v)
        self._insert(h, tx, sender, nonce, cost, queue)
        if self.on_ready is not None and not future:
            self.on_ready()
        return AddResult(status=AddStatus.ACCEPTED, tx_hash=h, evicted=tuple(victims))

    def reap(self, max_bytes: int, max_count: int) -> list[bytes]:
        """The oldest pending transactions that fit both limits, in arrival order.

        Stops at the first transaction that would overflow ``max_bytes`` rather
        than skipping it, so a later transaction of the same sender (next
        nonce) is never proposed ahead of an earlier one. Reaping does not
        remove anything: transactions leave the pool in :meth:`update`, after
        they are committed, so a failed round loses nothing. ``max_bytes``
        counts raw transaction bytes; the caller leaves room for the block's
        own overhead.
        """
        if max_bytes < 0 or max_count < 0:
            raise MempoolError("reap limits must not be negative")
        out: list[bytes] = []
        used = 0
        for tx in self._txs.values():
            if len(out) >= max_count or used + len(tx) > max_bytes:
                break
            out.append(tx)
            used += len(tx)
        return out

    def update(self, height: int, committed_txs: Iterable[bytes], *,
               recheck: bool = True) -> UpdateReport:
        """Forget the transactions of committed block ``height``, recheck and expire the rest.

        Call once per committed block, in height order, after the ledger has
        applied it, so that the check callback sees the new state: a pending
        transaction whose nonce was used up, or whose sender can no longer
        pay, is evicted. Committed hashes (also of transactions this pool
        never saw) go into the committed cache. Then transactions past their
        TTL (see the module docstring) are dropped.

        Raises:
            MempoolError: ``height`` does not move forward.
        """
        if height <= self._height:
            raise MempoolError(f"update for height {height} after height {self._height}")
        self._height = height
        removed = 0
        for tx in committed_txs:
            h = self._hash(tx)
            self._remember_committed(h)
            if h in self._txs:
                self._drop(h, keep_run=True)
                removed += 1
        evicted = self._recheck() if recheck else []
        self._reclassify_all()
        expired = self._expire(height)
        return UpdateReport(height=height, removed=removed, evicted=tuple(evicted),
                            expired=tuple(expired))

    def remove(self, hashes: Sequence[bytes]) -> int:
        """Drop the given pending transactions (e.g. found invalid in a block); returns count."""
        n = 0
        for h in hashes:
            if h in self._txs:
                self._drop(h)
                n += 1
        return n

    # --- internals --------------------------------------------------------

    def _fits(self, size: int) -> bool:
        cfg = self._config
        return len(self._txs) < cfg.max_txs and self._bytes + size <= cfg.max_bytes

    def _full_log(self) -> str:
        return f"mempool is full ({len(self._txs)} txs, {self._bytes} bytes)"

    def _queue(self, sender: bytes, outcome: CheckOutcome) -> SenderTxs:
        """``sender``'s queue (a fresh, unstored one if it has nothing pending), with
        the account's next nonce from the outcome or the ``next_nonce`` callback."""
        account = _int_attr(outcome, "account_nonce")
        if account is None and self._next_nonce is not None:
            account = self._next_nonce(sender)
        queue = self._senders.get(sender) or SenderTxs()
        before = len(queue.future)
        queue.set_account(account)
        if sender in self._senders:
            self._nfuture += len(queue.future) - before
        return queue

    def _sender_rules(self, h: bytes, queue: SenderTxs, nonce: int, cost: int,
                      outcome: CheckOutcome) -> AddResult | None:
        """The per-sender refusals (rule 5), or None if the sender may add this tx."""
        cfg = self._config
        if len(queue) >= cfg.max_txs_per_sender:
            return _full(h, f"sender has {len(queue)} transactions pending "
                            f"(max_txs_per_sender {cfg.max_txs_per_sender})", CODE_SENDER_FULL)
        if queue.would_be_future(nonce) and len(queue.future) >= cfg.max_future_txs_per_sender:
            return _full(h, f"sender has {len(queue.future)} future-nonce transactions pending "
                            f"(max_future_txs_per_sender {cfg.max_future_txs_per_sender})",
                         CODE_SENDER_FULL)
        balance = _int_attr(outcome, "balance")
        if cost and balance is not None and queue.cost + cost > balance:
            return AddResult(status=AddStatus.REJECTED, tx_hash=h, code=CODE_OVERSPENT,
                             codespace="mempool",
                             log=f"balance {balance} does not cover {cost} on top of the "
                                 f"{queue.cost} this sender's pending transactions spend")
        return None

    def _victims(self, size: int) -> list[bytes] | None:
        """Future transactions whose eviction makes room for ``size`` bytes, or None.

        Takes from the sender holding the most future transactions, highest
        nonce first (the one furthest from ever running), until the new one fits.
        """
        per_sender = {sender: sorted((q.txs[h], h) for h in q.future)
                      for sender, q in self._senders.items() if q.future}
        count, used, out = len(self._txs), self._bytes, []
        cfg = self._config
        while count >= cfg.max_txs or used + size > cfg.max_bytes:
            if not per_sender:
                return None
            sender = max(per_sender, key=lambda s: len(per_sender[s]))
            _nonce, h = per_sender[sender].pop()
            if not per_sender[sender]:
                del per_sender[sender]
            out.append(h)
            count -= 1
            used -= len(self._txs[h])
        return out

    def _insert(self, h: bytes, tx: bytes, sender: bytes | None, nonce: int | None, cost: int,
                queue: SenderTxs | None) -> None:
        self._txs[h] = tx
        self._bytes += len(tx)
        self._added[h] = self._height
        if cost:
            self._cost[h] = cost
        if queue is None or sender is None or nonce is None:
            return
        self._meta[h] = (sender, nonce)
        if sender not in self._senders:
            self._senders[sender] = queue
            self._nfuture += len(queue.future)
        before = len(queue.future)
        queue.add(h, nonce, cost)
        self._nfuture += len(queue.future) - before

    def _drop(self, h: bytes, *, keep_run: bool = False) -> None:
        """Remove ``h``; ``keep_run``: the caller reclassifies its sender afterwards."""
        tx = self._txs.pop(h)
        self._bytes -= len(tx)
        self._added.pop(h, None)
        cost = self._cost.pop(h, 0)
        meta = self._meta.pop(h, None)
        if meta is None:
            return
        queue = self._senders[meta[0]]
        before = len(queue.future)
        queue.remove(h, cost, keep_run=keep_run)
        self._nfuture += len(queue.future) - before
        if not queue.txs:
            del self._senders[meta[0]]

    def _reclassify_all(self) -> None:
        """Recompute every sender's split (after a block: O(pool), like the recheck)."""
        self._nfuture = 0
        for queue in self._senders.values():
            queue.reclassify()
            self._nfuture += len(queue.future)

    def _recheck(self) -> list[bytes]:
        """Evict pending transactions that the new state makes invalid."""
        evicted: list[bytes] = []
        nonces: dict[bytes, int | None] = {}  # one account read per sender per block
        for h, tx in list(self._txs.items()):
            meta = self._meta.get(h)
            if meta is not None and self._next_nonce is not None:
                sender, nonce = meta
                if sender not in nonces:
                    nonces[sender] = self._next_nonce(sender)
                expected = nonces[sender]
                keep = expected is not None and nonce >= expected
                if expected is not None:
                    self._senders[sender].account = expected
            else:
                outcome = self._check(tx)
                keep = outcome.code == 0
                account = _int_attr(outcome, "account_nonce")
                if meta is not None and account is not None:
                    self._senders[meta[0]].account = account
            if not keep:
                self._drop(h, keep_run=True)
                evicted.append(h)
        return evicted

    def _expire(self, height: int) -> list[bytes]:
        """Drop transactions past ``ttl_blocks``, and future ones past ``future_ttl_blocks``."""
        ttl, future_ttl = self._config.ttl_blocks, self._config.future_ttl_blocks
        if not ttl and not future_ttl:
            return []
        expired = [h for h in self._txs
                   if (ttl and height - self._added[h] >= ttl)
                   or (future_ttl and height - self._added[h] >= future_ttl
                       and self.is_future(h))]
        for h in expired:
            self._drop(h, keep_run=True)
        if expired:
            self._reclassify_all()
        return expired

    def _remember_committed(self, h: bytes) -> None:
        if self._committed_cap == 0:
            return
        self._committed[h] = None
        self._committed.move_to_end(h)
        while len(self._committed) > self._committed_cap:
            self._committed.popitem(last=False)
