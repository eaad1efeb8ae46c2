"""The transaction pool: pending transactions waiting for a proposer.

Pure and synchronous: no clock, no socket, no disk. The daemon injects the
check callback (the ledger's ``check_tx``), feeds transactions in from RPC and
gossip, reaps them into proposals and calls :meth:`Mempool.update` after every
committed block. Keeping IO out makes every rule here testable with plain
calls and keeps the pool deterministic given its inputs.

Rules, in the order :meth:`Mempool.add` applies them (cheap ones first, the
signature-verifying check callback last):

1. a transaction larger than ``max_tx_bytes`` is ``TOO_LARGE``;
2. one already pending, or committed recently, is a ``DUPLICATE`` (the
   committed-hash cache stops a re-gossiped old transaction from coming back);
3. a pool at ``max_txs`` or without room for its bytes is ``FULL``;
4. the check callback decides ``ACCEPTED`` or ``REJECTED(code, log)``.

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

#: Result codes of :class:`AddResult`, in codespace ``"mempool"``. Code 0 is
#: success; a ``REJECTED`` result carries the check callback's own code (in the
#: ledger's codespace) instead.
CODE_OK = 0
CODE_DUPLICATE = 1
CODE_FULL = 2
CODE_TOO_LARGE = 3


class CheckOutcome(Protocol):
    """What the injected check callback returns (the ledger's ``TxCheck`` fits).

    ``code`` 0 means the transaction may enter the pool; anything else is a
    rejection explained by ``log``.
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
    """

    status: AddStatus
    tx_hash: bytes
    code: int = CODE_OK
    log: str = ""
    codespace: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is AddStatus.ACCEPTED


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateReport:
    """What :meth:`Mempool.update` did: committed txs removed, rechecks evicted."""

    height: int
    removed: int
    evicted: tuple[bytes, ...]


def tx_hash(tx: bytes) -> bytes:
    """SHA-256 of the raw transaction bytes: the id used by the pool and RPC."""
    return hashlib.sha256(tx).digest()


class Mempool:
    """FIFO pool of checked transactions with dedupe and caps.

    Args:
        config: caps (``max_txs``, ``max_bytes``, ``max_tx_bytes``).
        check: called with the raw transaction on add and on every recheck.
        next_nonce: optional fast recheck. If the check outcome reports
            ``sender`` and ``nonce`` (the ledger's ``TxCheck`` does), a pending
            tx is rechecked after a block as "is ``nonce`` still >=
            ``next_nonce(sender)``" (None = the sender is gone) instead of
            re-running ``check``, which would verify its signature again. For the
            ledger that is exactly what ``check_tx`` re-decides after a block
            (its other checks are stateless), at one account read per sender.
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
        self._bytes = 0
        self._committed: OrderedDict[bytes, None] = OrderedDict()
        self._committed_cap = committed_cache_size
        self._height = 0

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
        if len(self._txs) >= cfg.max_txs or self._bytes + len(tx) > cfg.max_bytes:
            return AddResult(status=AddStatus.FULL, tx_hash=h, code=CODE_FULL,
                             codespace="mempool",
                             log=f"mempool is full ({len(self._txs)} txs, {self._bytes} bytes)")
        outcome = self._check(tx)
        if outcome.code != 0:
            # The ledger's codes are an IntEnum whose name is its codespace (see its docs).
            name = getattr(outcome.code, "name", None)
            return AddResult(status=AddStatus.REJECTED, tx_hash=h, code=int(outcome.code),
                             codespace=name.lower() if isinstance(name, str) else "ledger",
                             log=outcome.log)
        self._txs[h] = tx
        self._bytes += len(tx)
        sender, nonce = getattr(outcome, "sender", None), getattr(outcome, "nonce", None)
        if isinstance(sender, bytes) and sender and isinstance(nonce, int):
            self._meta[h] = (sender, nonce)
        return AddResult(status=AddStatus.ACCEPTED, tx_hash=h)

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
        """Forget the transactions of committed block ``height`` and recheck the rest.

        Call once per committed block, in height order, after the ledger has
        applied it, so that the check callback sees the new state: a pending
        transaction whose nonce was used up, or whose sender can no longer
        pay, is evicted. Committed hashes (also of transactions this pool
        never saw) go into the committed cache.

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
            old = self._txs.pop(h, None)
            if old is not None:
                self._bytes -= len(old)
                self._meta.pop(h, None)
                removed += 1
        evicted: list[bytes] = []
        if recheck:
            nonces: dict[bytes, int | None] = {}  # one account read per sender per block
            for h, tx in list(self._txs.items()):
                meta = self._meta.get(h) if self._next_nonce is not None else None
                if meta is not None:
                    sender, nonce = meta
                    if sender not in nonces:
                        nonces[sender] = self._next_nonce(sender)  # type: ignore[misc]
                    expected = nonces[sender]
                    keep = expected is not None and nonce >= expected
                else:
                    keep = self._check(tx).code == 0
                if not keep:
                    del self._txs[h]
                    self._meta.pop(h, None)
                    self._bytes -= len(tx)
                    evicted.append(h)
        return UpdateReport(height=height, removed=removed, evicted=tuple(evicted))

    def remove(self, hashes: Sequence[bytes]) -> int:
        """Drop the given pending transactions (e.g. found invalid in a block); returns count."""
        n = 0
        for h in hashes:
            tx = self._txs.pop(h, None)
            if tx is not None:
                self._bytes -= len(tx)
                self._meta.pop(h, None)
                n += 1
        return n

    def _remember_committed(self, h: bytes) -> None:
        if self._committed_cap == 0:
            return
        self._committed[h] = None
        self._committed.move_to_end(h)
        while len(self._committed) > self._committed_cap:
            self._committed.popitem(last=False)
