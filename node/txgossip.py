"""Transaction gossip: batch local transactions, publish them, feed peers' into the mempool.

The testnet-wide gossip budget is messages per second, not bytes
(LIBP2P.md), so transactions never travel one per message: every
transaction this node accepts from RPC goes into a :class:`GossipBatcher`
and is published in batches on :data:`TX_TOPIC` when the batch is full or its
linger time (``[mempool] gossip_batch_ms``) has passed. Transactions arriving
in a peer's batch are added to the local mempool but not re-published:
gossipsub already forwards the batch through the mesh.

The topic validator only checks the batch's shape (cheap, runs for every
hop); signature and nonce checks happen in ``Mempool.add``, and a bad
transaction inside a well-formed batch is simply not added.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import trio

from net.errors import NetError

from .config import MempoolSection
from .mempool import BatchDecodeError, GossipBatcher, Mempool, decode_batch

log = logging.getLogger(__name__)

TX_TOPIC = "oml/txs/1"
MAX_BATCH_TXS = 10_000
#: Received transactions admitted between two yields to the event loop.
ADMIT_CHUNK = 32
#: Batches are cut at this size even if ``gossip_batch_bytes`` is larger:
#: ``GossipBatcher.add`` re-sums the batch on every add (quadratic in the
#: batch length), and at ~150 bytes per transfer 64 KiB is already ~400 txs,
#: i.e. a few messages per second at 1,000 tx/s, well inside the gossip budget.
MAX_BATCH_BYTES = 64 * 1024


class Publisher(Protocol):
    async def publish(self, topic: str, data: bytes) -> None: ...


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class TxGossip:
    """Owns the batcher; :meth:`run` publishes, :meth:`on_batch` receives."""

    def __init__(self, config: MempoolSection, mempool: Mempool, publisher: Publisher,
                 *, max_msg_bytes: int) -> None:
        self.config = config
        self.mempool = mempool
        self.publisher = publisher
        self.max_msg_bytes = min(max_msg_bytes, max(config.gossip_batch_bytes * 2,
                                                    config.max_tx_bytes * 2))
        self.batcher = GossipBatcher(max_batch_bytes=min(config.gossip_batch_bytes,
                                                         max_msg_bytes, MAX_BATCH_BYTES),
                                     linger_ms=config.gossip_batch_ms)
        self._ready: list[bytes] = []
        self._wake = trio.Event()
        self.stats = {"batches_out": 0, "batches_in": 0, "txs_in": 0, "txs_added": 0,
                      "bad_batches": 0}

    def validate(self, _peer: str, data: bytes) -> bool:
        """Gossipsub validator: a malformed batch is neither delivered nor forwarded."""
        try:
            decode_batch(data, max_bytes=self.max_msg_bytes, max_count=MAX_BATCH_TXS,
                         max_tx_bytes=self.config.max_tx_bytes)
        except BatchDecodeError:
            self.stats["bad_batches"] += 1
            return False
        return True

    def queue_local(self, tx: bytes) -> None:
        """Queue a transaction that this node accepted from a client."""
        self._ready.extend(self.batcher.add(tx, now_ms()))
        self._wake.set()

    def _decode(self, peer: str, data: bytes) -> list[bytes]:
        try:
            txs = decode_batch(data, max_bytes=self.max_msg_bytes, max_count=MAX_BATCH_TXS,
                               max_tx_bytes=self.config.max_tx_bytes)
        except BatchDecodeError as exc:
            self.stats["bad_batches"] += 1
            log.info("dropped a malformed tx batch from %s: %s", peer[-8:], exc)
            return []
        self.stats["batches_in"] += 1
        self.stats["txs_in"] += len(txs)
        return list(txs)

    def _add(self, txs: list[bytes]) -> int:
        added = sum(1 for tx in txs if self.mempool.add(tx).accepted)
        self.stats["txs_added"] += added
        return added

    def on_batch(self, peer: str, data: bytes) -> int:
        """Add a peer's batch to the mempool; returns how many were new and valid."""
        return self._add(self._decode(peer, data))

    async def admit_batch(self, peer: str, data: bytes) -> int:
        """:meth:`on_batch`, yielding to other tasks every ``ADMIT_CHUNK`` transactions.

        Admission verifies each signature (0.1-0.25 ms here), so a batch of
        a few hundred transactions would hold the event loop for tens of
        milliseconds (more on a loaded machine): proposals and votes waiting
        for the consensus loop would wait that long too.
        """
        txs = self._decode(peer, data)
        added = 0
        for i in range(0, len(txs), ADMIT_CHUNK):
            added += self._add(txs[i:i + ADMIT_CHUNK])
            await trio.lowlevel.checkpoint()
        return added

    async def run_publisher(self) -> None:
        """Publish batches as they become ready (size) or due (linger time)."""
        while True:
            deadline = self.batcher.deadline_ms()
            if not self._ready:
                if deadline is None:
                    await self._wake.wait()
                else:
                    with trio.move_on_after(max(0.0, (deadline - now_ms()) / 1000)):
                        await self._wake.wait()
                self._wake = trio.Event()
                self._ready.extend(self.batcher.poll(now_ms()))
            while self._ready:
                batch = self._ready.pop(0)
                try:
                    await self.publisher.publish(TX_TOPIC, batch)
                    self.stats["batches_out"] += 1
                except NetError as exc:  # a failed publish must not stop gossip
                    log.warning("publishing a tx batch failed: %s", exc)

    async def run_receiver(self, channel: trio.abc.ReceiveChannel[tuple[str, bytes]]) -> None:
        async for peer, data in channel:
            await self.admit_batch(peer, data)
            await trio.lowlevel.checkpoint()


__all__ = ["TX_TOPIC", "TxGossip"]
