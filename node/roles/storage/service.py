"""The storage role as a daemon service: serve blobs, fetch on request, replicate.

Three jobs share one :class:`BlobStore`:

- **serve**: :class:`BlobServer` answers ``/oml/blob/1`` from the store.
- **fetch**: ``blob_fetch`` (the CLI's ``blob get``/``pin``) starts a
  :class:`Fetcher` run. A wanted blob is recorded in the role's LMDB before
  the fetch starts and removed when it is complete, so a node restarted
  mid-fetch resumes it by itself, from the chunks already verified on disk.
- **replicate**: the role follows the chain through its durable cursor and
  records every blob a committed transaction references
  (:func:`node.ledger.referenced_blobs`: a model's published weights, a
  host's OML package). Every ``REPLICATE_INTERVAL_S`` (and after a new
  reference) it asks its peers who holds each referenced blob it lacks;
  while fewer than ``replication`` peers hold (or are fetching) it, the node
  fetches and pins it. Peers check at staggered offsets (a hash of blob id
  and peer id), so usually the first one to start fetching is seen by the
  others before they decide, and a blob is not copied to every node at once.

When a fetch hits the disk quota, the unpinned blobs are collected and the
fetch is tried once more.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from node.config import StorageRole
from node.ledger import referenced_blobs
from node.rpc.errors import NOT_FOUND, STORAGE_FAILED, NotFound, StorageFailed
from node.rpc.methods import Context, Method
from node.rpc.params import Boolean, HexBytes, Param

from ..cursor import ChainFollower, CommittedBlock, RoleDB
from .errors import QuotaExceeded, StorageError
from .layout import role_root, store_root
from .manifest import Manifest
from .store import BlobStore
from .transfer import BlobServer, Fetcher, FetchProgress, PenaltyBox, find_providers

if TYPE_CHECKING:
    import lmdb

    from ..base import RoleContext

log = logging.getLogger("node.roles.storage")

WANTED = b"wanted"
"""blob id -> pin flag (1 byte): fetches to finish, across restarts."""
REFS = b"refs"
"""blob id -> height (u64) of the first committed tx that referenced it."""
REPLICATE_INTERVAL_S = 30.0
_U64 = struct.Struct(">Q")
BLOB_ID = HexBytes(32, 32)


@dataclass
class _Fetch:
    progress: FetchProgress
    pin: bool
    done: trio.Event = field(default_factory=trio.Event)


class StorageService:
    """One node's storage peer. Build with :meth:`from_context`; the daemon runs :meth:`run`."""

    name = "storage"

    def __init__(self, *, store: BlobStore, db: RoleDB, follower: ChainFollower,
                 transport: Any, config: StorageRole, peer_id: str,
                 stream_timeout_s: float = 10.0) -> None:
        self.store = store
        self._db = db
        self._follower = follower
        self._transport = transport
        self._config = config
        self._peer_id = peer_id
        self._timeout = stream_timeout_s
        self.penalties = PenaltyBox()
        self._fetcher = Fetcher(transport, store, penalties=self.penalties,
                                range_chunks=config.range_chunks,
                                max_providers=config.max_providers, timeout=stream_timeout_s)
        self._fetches: dict[bytes, _Fetch] = {}
        self._providers_seen: dict[bytes, list[str]] = {}
        self._nursery: trio.Nursery | None = None
        self._replicate_now = trio.Event()

    @classmethod
    def from_context(cls, ctx: RoleContext) -> StorageService:
        cfg = ctx.config.roles.storage
        store = BlobStore.open(store_root(ctx.data_dir), quota_bytes=cfg.quota_mb << 20)
        db = RoleDB(role_root(ctx.data_dir), (WANTED, REFS))
        follower = ChainFollower(db, ctx.chain)
        ctx.on_committed(follower.notify)
        return cls(store=store, db=db, follower=follower, transport=ctx.transport, config=cfg,
                   peer_id=ctx.transport.peer_id,
                   stream_timeout_s=ctx.config.p2p.stream_timeout_ms / 1000)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            BlobServer(self.store).register(self._transport)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for blob_id, pin in self._wanted():
                    self._start_fetch(blob_id, pin=pin)
                nursery.start_soon(self._follower.follow, self._record_refs)
                nursery.start_soon(self._replicate_loop)
                task_status.started()
        finally:
            self.store.close()
            self._db.close()

    # ------------------------------------------------------------------ fetching

    def request_fetch(self, blob_id: bytes, *, pin: bool) -> _Fetch | None:
        """Fetch ``blob_id`` (and pin it) unless it is here; the fetch survives a restart.

        Returns the running fetch, or None when the blob is already complete.
        """
        if self.store.has_manifest(blob_id) and self.store.is_complete(blob_id):
            if pin:
                self.store.pin(blob_id)
            return None
        running = self._fetches.get(blob_id)
        if running is not None and not running.done.is_set():
            running.pin = running.pin or pin
            return running
        with self._db.write() as txn:
            txn.put(blob_id, b"\x01" if pin else b"\x00", db=self._db.table(WANTED))
        return self._start_fetch(blob_id, pin=pin)

    async def fetch(self, blob_id: bytes, *, pin: bool = True) -> None:
        """Fetch ``blob_id`` for another role of this node and wait until it is complete.

        Raises:
            StorageError: the fetch failed (the error names the cause).
        """
        fetch = self.request_fetch(blob_id, pin=pin)
        if fetch is None:
            return
        await fetch.done.wait()
        if fetch.progress.state != "done":
            raise StorageError(fetch.progress.error or f"fetch of {blob_id.hex()} failed")

    async def put(self, path: Path, *, recipients: Sequence[bytes] = (), pin: bool = True
                  ) -> Manifest:
        """Store a file or folder for another role of this node (in a worker thread)."""
        return await trio.to_thread.run_sync(
            functools.partial(self.store.put_file, path, recipients=recipients, pin=pin))

    def _wanted(self) -> list[tuple[bytes, bool]]:
        with self._db.read() as txn:
            return [(bytes(k), v == b"\x01") for k, v in txn.cursor(db=self._db.table(WANTED))]

    def _start_fetch(self, blob_id: bytes, *, pin: bool) -> _Fetch:
        if self._nursery is None:
            raise StorageError("the storage service is not running")
        fetch = _Fetch(progress=FetchProgress(blob_id=blob_id), pin=pin)
        self._fetches[blob_id] = fetch
        self._nursery.start_soon(self._run_fetch, fetch)
        return fetch

    async def _run_fetch(self, fetch: _Fetch) -> None:
        blob_id = fetch.progress.blob_id
        try:
            for attempt in range(2):
                try:
                    await self._fetcher.fetch(blob_id, progress=fetch.progress,
                                              on_progress=lambda p: self._pin_early(fetch))
                    break
                except QuotaExceeded:
                    freed = await trio.to_thread.run_sync(self.store.collect)
                    if attempt or not freed:
                        raise
                    log.info("quota full: collected %d bytes of unpinned blobs", freed)
                    fetch.progress = FetchProgress(blob_id=blob_id)
            if fetch.pin:
                self.store.pin(blob_id)
            with self._db.write() as txn:
                txn.delete(blob_id, db=self._db.table(WANTED))
            log.info("fetched blob %s (%d bytes from %d providers)", blob_id.hex()[:16],
                     fetch.progress.bytes_fetched, len(fetch.progress.chunks_from))
        except StorageError as exc:
            # Recorded in the progress (state "failed", error); stays wanted only if pinned.
            log.warning("fetch of blob %s failed: %s", blob_id.hex()[:16], exc)
            fetch.progress.state = "failed"
            fetch.progress.error = str(exc)
            if not fetch.pin:
                with self._db.write() as txn:
                    txn.delete(blob_id, db=self._db.table(WANTED))
        finally:
            fetch.done.set()

    def _pin_early(self, fetch: _Fetch) -> None:
        """Pin as soon as the manifest is stored, so a collection never takes a wanted blob."""
        blob_id = fetch.progress.blob_id
        if fetch.pin and fetch.progress.state == "fetching" and not self.store.is_pinned(blob_id):
            self.store.pin(blob_id)

    # ------------------------------------------------------------------ replication

    def _record_refs(self, block: CommittedBlock, txn: lmdb.Transaction) -> None:
        table = self._db.table(REFS)
        new = False
        for committed in block.txs:
            if not committed.ok:
                continue
            for blob_id in referenced_blobs(committed.tx):
                new |= txn.put(blob_id, _U64.pack(block.height), db=table, overwrite=False)
        if new:
            self._replicate_now.set()

    def referenced(self) -> list[bytes]:
        with self._db.read() as txn:
            return [bytes(k) for k, _ in txn.cursor(db=self._db.table(REFS))]

    async def _replicate_loop(self) -> None:
        while True:
            with trio.move_on_after(REPLICATE_INTERVAL_S):
                await self._replicate_now.wait()
            self._replicate_now = trio.Event()
            for blob_id in self.referenced():
                await self._replicate_one(blob_id)

    async def _replicate_one(self, blob_id: bytes) -> None:
        if self._config.replication == 0:
            return
        if self.store.has_manifest(blob_id) and self.store.is_complete(blob_id):
            if not self.store.is_pinned(blob_id):
                self.store.pin(blob_id)  # a referenced blob we hold counts towards the factor
            return
        running = self._fetches.get(blob_id)
        if running is not None and not running.done.is_set():
            return
        await trio.sleep(self._stagger(blob_id))
        found, _failures = await find_providers(self._transport, blob_id,
                                                exclude=self.penalties.reasons(),
                                                timeout=self._timeout)
        self._providers_seen[blob_id] = sorted(found)
        if not found or len(found) >= self._config.replication:
            return
        log.info("blob %s has %d of %d replicas: fetching it", blob_id.hex()[:16], len(found),
                 self._config.replication)
        self.request_fetch(blob_id, pin=True)

    def _stagger(self, blob_id: bytes) -> float:
        """0-2 s, fixed per (blob, peer): peers deciding on one blob do so one after another."""
        digest = hashlib.sha256(blob_id + self._peer_id.encode()).digest()
        return int.from_bytes(digest[:2], "big") / 65535 * 2.0

    # ------------------------------------------------------------------ RPC

    def status(self, blob_id: bytes) -> dict[str, Any]:
        fetch = self._fetches.get(blob_id)
        if not self.store.has_manifest(blob_id) and fetch is None:
            raise NotFound(f"blob {blob_id.hex()} is not in this node's store and no fetch "
                           f"of it was asked for")
        out: dict[str, Any] = {"blob_id": blob_id.hex(), "known": False, "complete": False,
                               "referenced": blob_id in set(self.referenced()),
                               "providers_seen": self._providers_seen.get(blob_id, []),
                               "fetch": _progress_json(fetch) if fetch else None}
        if self.store.has_manifest(blob_id):
            out.update(self.store.info(blob_id).to_json(), known=True)
        return out

    def rpc_methods(self) -> Sequence[Method]:
        blob = Param("blob_id", BLOB_ID, "blob id (32 bytes)")

        async def blob_status(_ctx: Context, blob_id: bytes) -> Any:
            return self.status(blob_id)

        async def blob_fetch(_ctx: Context, blob_id: bytes, pin: bool = True) -> Any:
            try:
                self.request_fetch(blob_id, pin=pin)
            except StorageError as exc:
                raise StorageFailed(str(exc)) from None
            return self.status(blob_id)

        async def blob_list(_ctx: Context) -> Any:
            return {"blobs": [i.to_json() for i in self.store.list()],
                    "used_bytes": self.store.used_bytes(),
                    "quota_bytes": self._config.quota_mb << 20,
                    "referenced": [b.hex() for b in self.referenced()],
                    "penalised": self.penalties.reasons()}

        async def blob_providers(_ctx: Context, blob_id: bytes) -> Any:
            found, failures = await find_providers(self._transport, blob_id,
                                                   timeout=self._timeout)
            self._providers_seen[blob_id] = sorted(found)
            return {"providers": {p: {"chunks_present": e.present, "chunks": e.total,
                                      "complete": e.complete} for p, e in found.items()},
                    "failures": failures}

        status_schema = {"type": "object", "description":
                         "blob_id, known, size, chunks, chunks_present, bytes_present, "
                         "complete, pinned, encrypted, kind, referenced, providers_seen, "
                         "fetch (state, chunks done/total, providers, penalised, error)"}
        return (
            Method("blob_status", blob_status, (blob,), status_schema,
                   "What this node holds of a blob and how its fetch goes.", (NOT_FOUND,)),
            Method("blob_fetch", blob_fetch,
                   (blob, Param("pin", Boolean(), "pin it once fetched (default true)", False)),
                   status_schema,
                   "Start fetching a blob from peers (resumed after a restart); returns at "
                   "once with blob_status. Poll blob_status for progress.", (STORAGE_FAILED,)),
            Method("blob_list", blob_list, (), {"type": "object", "description":
                                                "blobs, used_bytes, quota_bytes, referenced, "
                                                "penalised peers"},
                   "Every blob in this node's store."),
            Method("blob_providers", blob_providers, (blob,), {"type": "object"},
                   "Ask the connected peers now which of them hold a blob."),
        )


def _progress_json(fetch: _Fetch) -> dict[str, Any]:
    p = fetch.progress
    return {"state": p.state, "chunks": p.total_chunks, "chunks_done": p.done_chunks,
            "chunks_resumed": p.resumed_chunks, "bytes_fetched": p.bytes_fetched,
            "providers": dict(p.providers), "chunks_from": dict(p.chunks_from),
            "penalised": dict(p.penalised), "error": p.error, "pin": fetch.pin}


__all__ = ["StorageService"]
