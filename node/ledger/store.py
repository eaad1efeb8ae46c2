"""LMDB at the edge: one environment, one named sub-database per table.

The ledger reads through :class:`TxnReader` and hands a block's complete
write set to :meth:`Store.commit_block`, which applies it in a single LMDB
write transaction. LMDB commits atomically and durably (``sync=True``), so
after a crash the state is exactly the one after some block. ``durable=False``
skips the fsync per commit (still atomic; a machine crash may lose the
last blocks): for tests and benchmarks, never for a live node.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import lmdb

from .errors import LedgerUsageError
from .state import TABLES

DEFAULT_MAP_SIZE = 8 << 30  # virtual size; the file grows only as data is written


class TxnReader:
    """A :class:`state.Reader` over one LMDB transaction."""

    __slots__ = ("_dbs", "_txn")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[bytes, lmdb._Database]) -> None:
        self._txn = txn
        self._dbs = dbs

    def get(self, table: bytes, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._dbs[table])

    def items(self, table: bytes, start: bytes = b"",
              prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` in key order from ``max(start, prefix)``, while keys
        start with ``prefix``."""
        with self._txn.cursor(db=self._dbs[table]) as cur:
            if not cur.set_range(max(start, prefix)):
                return
            for key, value in cur:
                if not key.startswith(prefix):
                    return
                yield bytes(key), bytes(value)


class Store:
    """The ledger's LMDB environment."""

    def __init__(self, path: Path, *, map_size: int = DEFAULT_MAP_SIZE,
                 durable: bool = True) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(str(path), max_dbs=len(TABLES), map_size=map_size,
                                  subdir=True, sync=durable, metasync=durable, readahead=False,
                                  max_readers=256)
        except lmdb.Error as exc:
            raise LedgerUsageError(f"cannot open ledger store at {path}: {exc}") from None
        self._dbs = {t: self._env.open_db(t) for t in TABLES}
        self.path = path

    @contextmanager
    def read(self) -> Iterator[TxnReader]:
        """A consistent snapshot of the last committed block."""
        with self._env.begin(write=False, buffers=False) as txn:
            yield TxnReader(txn, self._dbs)

    @contextmanager
    def write(self) -> Iterator[TxnReader]:
        """The block's write transaction; committed when the ``with`` body returns
        normally, aborted if it raises."""
        with self._env.begin(write=True) as txn:
            yield TxnReader(txn, self._dbs)

    def apply(self, reader: TxnReader, writes: Mapping[tuple[bytes, bytes], bytes | None]) -> None:
        """Put a write set into the write transaction behind ``reader``."""
        txn, dbs = reader._txn, reader._dbs
        for (table, key), value in writes.items():
            if value is None:
                txn.delete(key, db=dbs[table])
            else:
                txn.put(key, value, db=dbs[table])

    def grow(self) -> None:
        """Double the map size (after :class:`lmdb.MapFullError`; no txn may be open)."""
        self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def close(self) -> None:
        self._env.close()
