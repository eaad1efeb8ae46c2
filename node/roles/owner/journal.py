"""Group commit of grants: one fsync for every grant that arrived while the last one ran.

A durable LMDB commit costs an fsync (several ms on a typical disk, far more
than signing a batch). Grants for different hosts arrive concurrently, so
the journal writes everything queued since its previous commit in one write
transaction, in a worker thread (the event loop keeps serving meanwhile).
Each request waits for the commit that holds its grant; a grant is never
answered before it is durable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from .store import GrantEntry, Held, OwnerStore, OwnerStoreError

log = logging.getLogger("node.roles.owner")


class JournalClosed(Exception):
    """The journal stopped before it wrote the grant (the node is shutting down)."""


@dataclass
class Pending:
    """A queued grant; :meth:`wait` returns once it is durable (or failed)."""

    entry: GrantEntry
    done: trio.Event = field(default_factory=trio.Event)
    result: Held | BaseException | None = None

    async def wait(self) -> Held:
        """The stored state once durable.

        Raises:
            OwnerStoreError: the store refused the grant (seq already granted).
            JournalClosed: the journal stopped first.
            OSError / lmdb.Error: the write failed.
        """
        await self.done.wait()
        if isinstance(self.result, BaseException):
            raise self.result
        assert self.result is not None
        return self.result


class GrantJournal:
    """Queue grants with :meth:`submit`; :meth:`run` writes them in batches."""

    def __init__(self, store: OwnerStore) -> None:
        self._store = store
        self._queue: list[Pending] = []
        self._wake = trio.Event()
        self._open = True
        self.commits = 0
        self.grants = 0

    def submit(self, entry: GrantEntry) -> Pending:
        pending = Pending(entry)
        if not self._open:
            pending.result = JournalClosed("the owner service is stopping")
            pending.done.set()
            return pending
        self._queue.append(pending)
        self._wake.set()
        return pending

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                batch, self._queue = self._queue, []
                if batch:
                    await self._write(batch)
        finally:
            self._open = False
            for pending in self._queue:
                pending.result = JournalClosed("the owner service is stopping")
                pending.done.set()
            self._queue = []

    async def _write(self, batch: list[Pending]) -> None:
        entries = [p.entry for p in batch]
        try:
            # Not abandoned on cancel: a started commit finishes and its waiters learn so.
            results: list[Held | OwnerStoreError] | BaseException = \
                await trio.to_thread.run_sync(self._store.record_grants, entries)
        except Exception as exc:  # disk full, map full: every waiter gets the failure
            log.error("storing %d grants failed: %s", len(batch), exc)
            results = exc
        self.commits += 1
        self.grants += len(batch)
        for i, pending in enumerate(batch):
            pending.result = results if isinstance(results, BaseException) else results[i]
            pending.done.set()
