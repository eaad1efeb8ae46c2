"""Durable chain following for roles: a per-role LMDB cursor, exactly once per block.

Why not the RPC event bus: it drops slow subscribers and forgets everything
at a restart. A role that must act once per chain event (fetch a referenced
blob, run a fingerprinting job, post a reveal) instead keeps the height of
the last block it handled in its own LMDB environment and reads committed
blocks from the chain store. The handler for block ``h`` gets the write
transaction in which the cursor moves to ``h``: whatever the role records
there (a queued job, a pending reveal) commits atomically with the cursor.
After a crash the role resumes at the first block whose effects were not
committed, and no block is handled twice.

Handlers are synchronous and only *record* work; the slow part (network,
training) runs in the role's own job loop, which reads the recorded work
back from the same environment. That split is what makes "exactly once"
hold for effects that cannot be rolled back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lmdb
import trio

from node.ledger.errors import TxDecodeError
from node.ledger.txs import Tx, decode_tx, tx_hash

CURSOR_TABLE = b"cursor"
_CURSOR_KEY = b"height"
_U64 = struct.Struct(">Q")
DEFAULT_MAP_SIZE = 1 << 30


class ChainView(Protocol):
    """What a follower reads of the chain (the daemon's ``Chain`` has it; tests fake it)."""

    @property
    def height(self) -> int: ...

    def block(self, height: int) -> Any:
        """The committed block at ``height`` (``.height``, ``.header.time_ms``, ``.txs``)."""
        ...

    def indexed_tx(self, h: bytes) -> Any:
        """The stored result of a committed tx (``.code``, ``.events``) or None."""
        ...


@dataclass(frozen=True, slots=True)
class CommittedTx:
    """One transaction of a committed block, decoded, with its result code."""

    index: int
    hash: bytes
    tx: Tx
    code: int

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, slots=True)
class CommittedBlock:
    height: int
    time_ms: int
    txs: tuple[CommittedTx, ...]


class RoleDB:
    """One LMDB environment per role: its cursor table plus the role's own tables.

    One environment per role (not tables in the ledger's) keeps a role's
    writes out of the consensus path and lets an operator wipe one role's
    state without touching the chain.
    """

    def __init__(self, path: Path, tables: tuple[bytes, ...] = (), *,
                 map_size: int = DEFAULT_MAP_SIZE, sync: bool = True) -> None:
        """``sync=False``: commits reach the OS (they survive a crash of this process)
        but are fsynced only by :meth:`flush`, for a role that flushes on a timer."""
        path.mkdir(parents=True, exist_ok=True)
        names = (CURSOR_TABLE, *tables)
        self._env = lmdb.open(str(path), max_dbs=len(names), map_size=map_size,
                              subdir=True, lock=True, sync=sync)
        self._tables = {name: self._env.open_db(name) for name in names}

    def table(self, name: bytes) -> Any:
        return self._tables[name]

    @contextmanager
    def write(self) -> Iterator[lmdb.Transaction]:
        with self._env.begin(write=True) as txn:
            yield txn

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        with self._env.begin() as txn:
            yield txn

    def flush(self) -> None:
        """fsync every commit so far (blocking: call from a worker thread)."""
        self._env.sync(True)

    def close(self) -> None:
        self._env.close()


BlockHandler = Callable[[CommittedBlock, lmdb.Transaction], None]


class ChainFollower:
    """Hands each committed block above the cursor to a handler, once, in order.

    ``start_height``: the first block a fresh cursor handles (a role switched
    on later may skip history it cannot act on any more).
    """

    def __init__(self, db: RoleDB, chain: ChainView, *, start_height: int = 1) -> None:
        self._db = db
        self._chain = chain
        self._start = max(1, start_height)
        self._wakeup = trio.Event()

    @property
    def cursor(self) -> int:
        """Height of the last block whose handling committed (``start_height - 1`` when new)."""
        with self._db.read() as txn:
            raw = txn.get(_CURSOR_KEY, db=self._db.table(CURSOR_TABLE))
        return _U64.unpack(raw)[0] if raw is not None else self._start - 1

    def notify(self) -> None:
        """A block was committed; call from the trio thread (``chain.on_committed``)."""
        self._wakeup.set()

    def handle_available(self, handler: BlockHandler) -> int:
        """Handle every stored block above the cursor now; returns how many."""
        done = 0
        height = self.cursor + 1
        while height <= self._chain.height:
            block = self.committed_block(height)
            with self._db.write() as txn:
                handler(block, txn)
                txn.put(_CURSOR_KEY, _U64.pack(height), db=self._db.table(CURSOR_TABLE))
            done += 1
            height += 1
        return done

    async def follow(self, handler: BlockHandler) -> None:
        """Handle blocks as they are committed, forever (until cancelled)."""
        while True:
            self._wakeup = trio.Event()
            self.handle_available(handler)
            await self._wakeup.wait()

    def committed_block(self, height: int) -> CommittedBlock:
        block = self._chain.block(height)
        if block is None:
            raise LookupError(f"block {height} is not in the block store")
        txs = []
        for i, raw in enumerate(block.txs):
            h = tx_hash(raw)
            indexed = self._chain.indexed_tx(h)
            try:
                tx = decode_tx(raw)
            except TxDecodeError:
                continue  # a block may carry a tx that failed to decode; it changed nothing
            code = indexed.code if indexed is not None else -1
            txs.append(CommittedTx(index=i, hash=h, tx=tx, code=code))
        return CommittedBlock(height=height, time_ms=block.header.time_ms, txs=tuple(txs))


__all__ = ["ChainFollower", "ChainView", "CommittedBlock", "CommittedTx", "RoleDB"]
