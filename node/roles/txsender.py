"""One node's own transactions: signed with its account, numbered, submitted.

Every role of a node signs with the same account, so they share one nonce
sequence; a second sender would hand out the same nonce twice. The sender
keeps the next nonce itself (the ledger's nonce counts only committed txs,
not those waiting in the mempool) and re-reads it from the ledger when the
mempool says a nonce was wrong (another tool used the account meanwhile).

Exactly-once is the caller's part: a role that must not post a transaction
twice stores the signed bytes (:meth:`TxSender.sign`) in its own database
before it submits them, and after a restart re-submits *those bytes* (the
same nonce cannot be committed twice) instead of signing the body anew.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from node.ledger.errors import Code, TxDecodeError
from node.ledger.txs import build_tx, decode_tx, tx_hash
from node.mempool.pool import CODE_DUPLICATE


class TxSendError(Exception):
    """The node's mempool refused a transaction (the check's code, codespace and log say why)."""

    def __init__(self, code: int, log: str, codespace: str = "") -> None:
        super().__init__(f"transaction refused ({codespace or 'code'} {code}): {log}")
        self.code = code
        self.log = log
        self.codespace = codespace

    @property
    def stale_nonce(self) -> bool:
        """The ledger's BAD_NONCE (the mempool's own codes live in codespace "mempool")."""
        return self.code == Code.BAD_NONCE and self.codespace != "mempool"


class SenderBackend(Protocol):
    """What the sender needs of its node (the daemon's RPC backend has it)."""

    def account(self, address: bytes) -> Any: ...

    async def broadcast_tx(self, tx: bytes) -> Any: ...


class TxIndex(Protocol):
    def indexed_tx(self, h: bytes) -> Any: ...


class TxSender:
    """Signs bodies with the node's account and hands them to its mempool."""

    def __init__(self, *, signer: Any, address: bytes, chain_id: str, backend: SenderBackend,
                 index: TxIndex, mempool_txs: Any = None) -> None:
        self._signer = signer
        self.address = address
        self.chain_id = chain_id
        self._backend = backend
        self._index = index
        self._mempool_txs = mempool_txs
        self._next: int | None = None
        self._lock = trio.Lock()

    def _ledger_nonce(self) -> int:
        record = self._backend.account(self.address)
        return int(getattr(record, "nonce", 0)) if record is not None else 0

    def _pending_mine(self) -> int:
        """Our transactions waiting in the mempool (each holds one nonce)."""
        if self._mempool_txs is None:
            return 0
        count = 0
        for raw in list(self._mempool_txs()):
            try:
                if decode_tx(raw).sender == self.address:
                    count += 1
            except TxDecodeError:
                continue
        return count

    def _resync(self) -> int:
        self._next = self._ledger_nonce() + self._pending_mine()
        return self._next

    async def sign(self, body: Any) -> bytes:
        """The signed transaction for ``body`` with the next nonce (the nonce is taken)."""
        async with self._lock:
            nonce = self._next if self._next is not None else self._resync()
            nonce = max(nonce, self._ledger_nonce())
            self._next = nonce + 1
            return build_tx(self._signer, self.chain_id, nonce, body)

    async def submit(self, tx: bytes) -> bytes:
        """Hand signed bytes to the mempool; returns the tx hash.

        Bytes already committed or already waiting are fine (a re-submission
        after a restart). A nonce the ledger has moved past means another
        transaction took that nonce: the caller must sign its body anew.

        Raises:
            TxSendError: the check refused the transaction.
        """
        h = tx_hash(tx)
        if self._index.indexed_tx(h) is not None:
            return h
        result = await self._backend.broadcast_tx(tx)
        code, codespace = int(result.code), str(getattr(result, "codespace", "") or "")
        # Only the mempool's DUPLICATE (these bytes are pending or just committed) is fine;
        # the ledger's "nonce N already used" also says "already" and is not.
        if code == 0 or (code == CODE_DUPLICATE and codespace == "mempool"):
            return h
        error = TxSendError(code, str(result.log), codespace)
        if error.stale_nonce:
            self._next = None  # re-read on the next sign
        raise error

    async def send(self, body: Any) -> bytes:
        """Sign and submit ``body``; on a stale nonce, re-sign once. Returns the tx hash."""
        try:
            return await self.submit(await self.sign(body))
        except TxSendError as exc:
            if not exc.stale_nonce:
                raise
            return await self.submit(await self.sign(body))

    def result(self, h: bytes) -> Any:
        """The committed result (``.code``, ``.height``) of a tx, or None if not committed."""
        return self._index.indexed_tx(h)


__all__ = ["TxSendError", "TxSender"]
