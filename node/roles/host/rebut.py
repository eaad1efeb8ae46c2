"""Automatic rebuttal: a committed claim against this host is answered with its permission.

The host role's :class:`node.roles.cursor.ChainFollower` hands each committed
block to :meth:`Rebutter.on_block`, which looks for successful
``open_claim`` transactions naming this host (claims are two-phase: the
``commit_claim`` before it hides its keys, so there is nothing to answer
until the claim is opened). For each, in the same LMDB transaction that
moves the cursor, it records the rebuttal to make: for the first claimed
key (``query_hash(key)``) with a stored permission issued below the claim's
*committed* height (the ledger accepts only a permission issued before the
commitment; the ``claim_opened`` event carries that height), the one with
the lowest ``issued_height``; one permitted key dismisses the whole claim.
When no claimed key has one it records that the host cannot rebut (logged
as a warning: the host answered those queries without permission, or the
claim names queries it never saw).

:meth:`Rebutter.run` then posts the recorded rebuttals. Exactly once: the
signed transaction is stored before it is submitted, and after a restart
the same bytes are submitted again (their nonce cannot be committed twice);
only a refused nonce makes it sign anew. The window to rebut is the claim's
reveal window plus the challenge window; the follower acts at the first
block after the opening, so the rebuttal normally lands a block or two later.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

import lmdb
import trio

from consensus.encoding import decode, encode, expect_bytes, expect_int, expect_list
from node.ledger.errors import Code
from node.ledger.txs import Kind, RebutBody, tx_hash
from node.ledger.vouchers import query_hash

from ..cursor import CommittedBlock
from ..txsender import TxSendError
from .store import REBUTS, HostStore

log = logging.getLogger("node.roles.host")

_U64 = struct.Struct(">Q")
#: Rebuttal states.
TODO, SENT, DONE, NO_PERMIT, FAILED = 1, 2, 3, 4, 5
STATE_NAMES = {TODO: "todo", SENT: "sent", DONE: "done", NO_PERMIT: "no_permit",
               FAILED: "failed"}
#: Ledger codes that mean the rebuttal can never succeed (the claim is decided, etc.).
_FINAL_CODES = {Code.WRONG_STATE, Code.NOT_FOUND, Code.BAD_PERMISSION, Code.LATE_PERMISSION,
                Code.UNAUTHORIZED}
RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Rebuttal:
    claim_id: int
    state: int
    seq: int = 0
    issued_height: int = 0
    signature: bytes = b""
    tx: bytes = b""
    """The signed ``rebut`` transaction, once signed."""
    committed_height: int = 0
    """Height of the claim's commitment: the permission must be issued below it."""
    note: str = ""
    fp_index: int = 0
    """The claimed index whose key the permission covers."""

    def to_bytes(self) -> bytes:
        return encode([self.state, self.seq, self.issued_height, self.signature, self.tx,
                       self.committed_height, self.note.encode("utf-8"), self.fp_index])

    @classmethod
    def from_bytes(cls, claim_id: int, raw: bytes) -> Rebuttal:
        v = expect_list(decode(raw), 8)
        return cls(claim_id, expect_int(v[0]), expect_int(v[1]), expect_int(v[2]),
                   expect_bytes(v[3]), expect_bytes(v[4]), expect_int(v[5]),
                   expect_bytes(v[6]).decode("utf-8", "replace"), expect_int(v[7]))

    def but(self, **changes: Any) -> Rebuttal:
        from dataclasses import replace

        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id, "state": STATE_NAMES.get(self.state, "?"),
                "fp_index": self.fp_index, "seq": self.seq, "issued_height": self.issued_height,
                "committed_height": self.committed_height, "note": self.note}


def _opened(indexed: Any) -> tuple[int, bytes, bytes, int] | None:
    """``(claim_id, model_id, host, committed_height)`` from a ``claim_opened`` event."""
    for event in getattr(indexed, "events", ()) or ():
        if isinstance(event, dict) and event.get("type") == "claim_opened":
            attrs = event.get("attributes") or {}
            try:
                return (int(attrs["claim_id"]), bytes.fromhex(attrs["model_id"]),
                        bytes.fromhex(attrs["host"]), int(attrs["committed_height"]))
            except (KeyError, TypeError, ValueError):
                return None
    return None


class Rebutter:
    """Records rebuttals from committed claims and posts them."""

    def __init__(self, *, store: HostStore, chain: Any, txs: Any, host: bytes) -> None:
        self._store = store
        self._chain = chain
        self._txs = txs
        self.host = host
        self._wakeup = trio.Event()

    # ------------------------------------------------------------------ recording

    def on_block(self, block: CommittedBlock, txn: lmdb.Transaction) -> None:
        """Record a rebuttal for every claim against this host opened in ``block``."""
        table = self._store.db.table(REBUTS)
        for committed in block.txs:
            if not committed.ok or committed.tx.kind != Kind.OPEN_CLAIM:
                continue
            opened = _opened(self._chain.indexed_tx(committed.hash))
            if opened is None:
                log.error("open_claim tx %s has no claim_opened event",
                          committed.hash.hex()[:16])
                continue
            claim_id, model_id, host, committed_height = opened
            if host != self.host:
                continue
            rec = self._rebuttal(claim_id, model_id, committed_height,
                                 committed.tx.body.items, txn)  # type: ignore[union-attr]
            txn.put(_U64.pack(claim_id), rec.to_bytes(), db=table, overwrite=False)
            self._wakeup.set()

    def _rebuttal(self, claim_id: int, model_id: bytes, committed_height: int,
                  items: Any, txn: lmdb.Transaction) -> Rebuttal:
        """The rebuttal to make: the first claimed key with a permission issued in time."""
        for fp_index, key, _output in items:
            permits = [p for p in self._store.permits_for(model_id, query_hash(key), txn)
                       if p.issued_height < committed_height]
            if permits:
                p = permits[0]
                log.info("claim %d against this host: rebutting with the permission (seq %d) "
                         "for its key at index %d", claim_id, p.seq, fp_index)
                return Rebuttal(claim_id, TODO, p.seq, p.issued_height, p.signature,
                                committed_height=committed_height, fp_index=fp_index)
        log.warning("claim %d against this host (fp indices %s): no permission for any of its "
                    "queries issued before height %d; cannot rebut", claim_id,
                    ",".join(str(i) for i, _k, _o in items), committed_height)
        return Rebuttal(claim_id, NO_PERMIT, committed_height=committed_height,
                        note="no stored permission for any claimed query")

    def rebuttals(self) -> list[Rebuttal]:
        with self._store.db.read() as txn:
            return [Rebuttal.from_bytes(_U64.unpack(bytes(k))[0], bytes(v))
                    for k, v in txn.cursor(db=self._store.db.table(REBUTS))]

    def _put(self, rec: Rebuttal) -> None:
        with self._store.db.write() as txn:
            txn.put(_U64.pack(rec.claim_id), rec.to_bytes(), db=self._store.db.table(REBUTS))

    # ------------------------------------------------------------------ posting

    async def run(self) -> None:
        """Post recorded rebuttals until each is committed or can never succeed."""
        while True:
            self._wakeup = trio.Event()
            busy = False
            for rec in self.rebuttals():
                if rec.state in (TODO, SENT):
                    busy = True
                    try:
                        await self._advance(rec)
                    except Exception:  # the node's backend failed: retry on the next round
                        log.exception("rebuttal of claim %d: will retry", rec.claim_id)
            with trio.move_on_after(RETRY_S if busy else float("inf")):
                await self._wakeup.wait()

    def notify(self) -> None:
        """A block was committed: a sent rebuttal may be in it."""
        self._wakeup.set()

    async def _advance(self, rec: Rebuttal) -> None:
        if rec.tx:
            result = self._txs.result(tx_hash(rec.tx))
            if result is not None:
                code = int(result.code)
                self._put(rec.but(state=DONE if code == 0 else FAILED,
                                  note="rebutted" if code == 0 else
                                  f"rebut failed on chain (code {code}): {result.log}"))
                if code == 0:
                    log.info("claim %d rebutted", rec.claim_id)
                else:
                    log.warning("rebuttal of claim %d failed: %s", rec.claim_id, result.log)
                return
        if not rec.tx:
            body = RebutBody(claim_id=rec.claim_id, fp_index=rec.fp_index, seq=rec.seq,
                             issued_height=rec.issued_height, signature=rec.signature)
            rec = rec.but(tx=await self._txs.sign(body), state=SENT)
            self._put(rec)  # stored before it is submitted: never two rebuttals signed anew
        try:
            await self._txs.submit(rec.tx)
        except TxSendError as exc:
            if exc.code == Code.BAD_NONCE:
                self._put(rec.but(tx=b"", state=TODO))  # the nonce went elsewhere: re-sign
            elif exc.code in _FINAL_CODES:
                self._put(rec.but(state=FAILED, note=exc.log))
                log.warning("rebuttal of claim %d refused: %s", rec.claim_id, exc.log)
            else:
                log.warning("rebuttal of claim %d not accepted yet: %s", rec.claim_id, exc)


__all__ = ["Rebuttal", "Rebutter"]
