"""When a stored permission string is safe from a power loss: group-committed fsyncs.

The host role's LMDB is opened without a sync per commit. A granted batch is
*written* (committed: visible, and it survives a crash of the node process)
before its queries run the model; the :class:`Flusher` fsyncs it in a worker
thread while the model runs, and, with ``permit_sync_ms = 0``, the gateway
sends no byte of an answer before the fsync that covers its permission has
returned (:meth:`Flusher.wait`). So no answer ever leaves without its
permission on disk, and the fsync's milliseconds overlap the generation
instead of adding to it. Writes that arrive during a flush are covered by
the next one (one fsync for many grants under load).

With ``permit_sync_ms = N`` the gateway answers without waiting and the
flusher runs every N ms: a power loss may lose the last N ms of permission
strings (docs/gateway.md, "Durability").
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger("node.roles.host")

#: Even with no grant waiting, writes (cursor, rebuttals, usage) are fsynced this often.
IDLE_FLUSH_S = 1.0


class Flusher:
    """Counts writes and fsyncs them; ``wait(ticket)`` returns once a write is on disk."""

    def __init__(self, flush: Callable[[], None], *, interval_s: float = 0.0) -> None:
        self._flush = flush
        self._interval = interval_s
        self.written = 0
        """Tickets handed out: one per write that must reach the disk."""
        self.durable = 0
        """Every ticket up to this one is on disk."""
        self._wanted = trio.Event()
        self._changed = trio.Event()

    def wrote(self) -> int:
        """Note a write; returns its ticket. Call right after the commit."""
        self.written += 1
        if self._interval == 0:
            self._wanted.set()
        return self.written

    async def wait(self, ticket: int) -> None:
        """Return once the write with ``ticket`` is on disk."""
        while self.durable < ticket:
            await self._changed.wait()

    async def run(self) -> None:
        """fsync when a write waits (or every ``interval_s``), in a worker thread."""
        try:
            while True:
                with trio.move_on_after(self._interval or IDLE_FLUSH_S):
                    await self._wanted.wait()
                self._wanted = trio.Event()
                await self._flush_now()
        finally:
            with trio.CancelScope(shield=True):
                await self._flush_now()

    async def _flush_now(self) -> None:
        target = self.written
        try:
            await trio.to_thread.run_sync(self._flush)
        except Exception:  # a disk error: answers wait; try again shortly
            log.exception("fsync of the host role's LMDB failed; retrying")
            await trio.sleep(IDLE_FLUSH_S)
            self._wanted.set()
            return
        self.durable = max(self.durable, target)
        self._changed.set()
        self._changed = trio.Event()


__all__ = ["Flusher"]
