"""The consensus driver: runs the sans-IO core with trio timers, libp2p and the file WAL.

One input queue (CometBFT's receiveRoutine): peers' proposals and votes,
fired timeouts and blocks fetched by sync all become core events on one
trio channel, handled one at a time by :meth:`ConsensusDriver.run`. The
actions each event produces go through :class:`consensus.plan.Planner`,
which decides the order and the WAL batching for every driver (the
simulator and the crash tests run the same planner), and the driver
performs the effects:

``WriteWAL``         appended and fsynced in a worker thread (the planner puts it
                     before any ``Broadcast`` or ``CommitBlock``, so our vote is
                     durable before anyone sees it);
``Broadcast``        encoded and queued for every other validator's direct link
                     (``node/consensus_links.py``; never blocks the loop);
``ScheduleTimeout``  a trio task that sleeps, then queues ``TimeoutFired``;
``CommitBlock``      the block is stored, indexed and announced
                     (``Chain.store_committed``; the ledger already executed it
                     when the core called ``Application.apply_block``) and the
                     mempool drops its transactions;
``TruncateWAL``      the WAL drops the records of the committed height and below;
``RequestSync``      wakes the sync task, which fetches blocks from peers and
                     queues them as ``CommittedBlockReceived``;
``WaitForTxs``       (``create_empty_blocks`` off, or an interval set) arms the
                     txs task, which queues ``TxsAvailable`` as soon as the
                     mempool holds a transaction a block could include; the
                     mempool wakes it on every such admission, so an idle node
                     polls nothing;
``ReportEvidence``   logged (the ledger has no slashing for double signing).

Consensus messages travel on direct links between validators
(:class:`node.consensus_links.ConsensusLinks`), not by gossip. Each one is
decoded and checked cheaply on arrival (:meth:`ConsensusDriver.admit`:
signer in the validator set, height not finished); signatures are checked
by the core, which also ignores exact duplicates.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import trio

from consensus.block import Block
from consensus.crypto import Signer
from consensus.encoding import DecodeError
from consensus.errors import ConsensusError, InvalidBlockError
from consensus.events import (
    Broadcast,
    CommitBlock,
    CommittedBlockReceived,
    ProposalReceived,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    TimeoutFired,
    TxsAvailable,
    VoteReceived,
    WaitForTxs,
)
from consensus.messages import (
    Message,
    ProposalMessage,
    VoteMessage,
    decode_message,
    encode_message,
)
from consensus.plan import Effect, Planner, TruncateWAL, WriteWAL
from consensus.state import ConsensusParams
from consensus.wal import FileWAL
from consensus.wal_api import record_height

from .chain import BlockRejected, Chain
from .config import Config
from .consensus_links import ConsensusLinks
from .mempool import Mempool
from .sync import BlockSyncer, SyncError
from .txcheck import CachedCheck, order_for_block

log = logging.getLogger(__name__)

#: Room left in a consensus message around the block's transactions.
BLOCK_OVERHEAD_BYTES = 64 * 1024
#: Most transactions per proposal. Bigger blocks amortise the per-height
#: messages, but a proposal must be built, gossiped, decoded and checked by
#: every validator within timeout_propose; on a loaded 2-core testnet 4,000
#: transfers already missed it now and then (a wasted round).
MAX_BLOCK_TXS = 2_000
INBOX_SIZE = 4096
#: A node at least this many heights behind its best peer syncs without
#: waiting for the core to ask (e.g. it missed every message of a height).
SYNC_AHEAD = 2
#: Peers' heights are polled this often while there is something to catch up;
#: on a quiet chain the interval doubles up to STATUS_POLL_MAX_S (CometBFT's
#: block sync asks for status every 10 s). Each poll is a stream to every peer.
STATUS_POLL_S = 1.0
STATUS_POLL_MAX_S = 10.0


def now_ms() -> int:
    """Wall-clock milliseconds: block times are compared across nodes, so not monotonic."""
    return int(time.time() * 1000)


class LedgerApp:
    """``consensus.app.Application`` over the ledger and the mempool."""

    def __init__(self, chain: Chain, mempool: Mempool, check: CachedCheck | None = None) -> None:
        self.chain = chain
        self.ledger = chain.ledger
        self.mempool = mempool
        self.check = check or CachedCheck(chain.ledger)
        self.results: dict[int, Any] = {}

    def propose_txs(self, height: int, max_bytes: int) -> list[bytes]:
        """Pending transactions, each sender's in gap-free nonce order, up to ``max_bytes``.

        The whole pool is ordered (not just its oldest ``max_bytes``), so
        transactions waiting for a missing nonce at the head of the FIFO
        cannot starve everything behind them.
        """
        def next_nonce(sender: bytes) -> int:
            acct = self.ledger.account(sender)
            return acct.nonce if acct is not None else 0

        out: list[bytes] = []
        used = 0
        for tx in order_for_block(list(self.mempool), self.check.sender_nonce, next_nonce):
            if len(out) >= MAX_BLOCK_TXS or used + len(tx) > max_bytes:
                break
            out.append(tx)
            used += len(tx)
        return out

    def validate_block(self, block: Block) -> None:
        """Reject a proposal holding a transaction over the ledger's size limit.

        Nothing else: as in CometBFT, a transaction that fails (bad signature,
        wrong nonce, no funds) is still ordered and gets an error code when the
        block is applied, deterministically on every node. Verifying every
        signature here as well would double the dominant CPU cost per
        transaction (it is verified on mempool admission and when applied).
        """
        from .ledger import MAX_TX_BYTES

        for i, tx in enumerate(block.txs):
            if len(tx) > MAX_TX_BYTES:
                raise InvalidBlockError(f"tx {i} of block {block.height} has {len(tx)} bytes, "
                                        f"over the limit {MAX_TX_BYTES}")

    def apply_block(self, block: Block) -> bytes:
        app_hash, result = self.chain.execute(block)
        if result is not None:
            self.results[block.height] = result
        return app_hash

    def take_result(self, height: int) -> Any:
        return self.results.pop(height, None)


class ConsensusDriver:
    """Runs one validator's consensus until cancelled. See the module docstring."""

    def __init__(self, *, config: Config, chain: Chain, mempool: Mempool, signer: Signer,
                 transport: Any, syncer: BlockSyncer | None, wal_dir: Path, metrics: Any = None,
                 max_gossip_bytes: int, check: CachedCheck | None = None) -> None:
        self.config = config
        self.chain = chain
        self.mempool = mempool
        self.signer = signer
        self.transport = transport
        self.syncer = syncer
        self.wal_dir = wal_dir
        self.metrics = metrics
        self.app = LedgerApp(chain, mempool, check)
        c = config.consensus
        self.params = ConsensusParams(
            timeout_propose_ms=c.timeout_propose_ms,
            timeout_propose_delta_ms=c.timeout_propose_delta_ms,
            timeout_prevote_ms=c.timeout_prevote_ms,
            timeout_prevote_delta_ms=c.timeout_prevote_delta_ms,
            timeout_precommit_ms=c.timeout_precommit_ms,
            timeout_precommit_delta_ms=c.timeout_precommit_delta_ms,
            timeout_commit_ms=c.timeout_commit_ms,
            max_block_txs_bytes=max(1024, min(c.max_block_bytes,
                                              max_gossip_bytes - BLOCK_OVERHEAD_BYTES)),
            create_empty_blocks=c.create_empty_blocks,
            create_empty_blocks_interval_ms=c.create_empty_blocks_interval_ms,
        )
        self.max_msg_bytes = max_gossip_bytes
        self._send, self._recv = trio.open_memory_channel[Any](INBOX_SIZE)
        self._sync_wanted = trio.Event()
        self._committed = trio.Event()
        self.stats = {"bad_messages": 0, "stale_messages": 0, "evidence": 0}
        self.links = ConsensusLinks(transport=transport, chain_id=chain.chain_id, signer=signer,
                                    valset=lambda: chain.valset, on_message=self._on_direct)
        self.planner = Planner()
        #: records of the running batch's WriteWAL effects not written yet
        self._unwritten: list[bytes] = []
        # The height whose WaitForTxs is not answered yet, and the wake-up the
        # mempool sets whenever it admits a transaction a block could include.
        self._txs_wanted: int | None = None
        self._txs_changed = trio.Event()
        mempool.on_ready = self._note_ready

    # --- inputs ---------------------------------------------------------------------

    def admit(self, data: bytes) -> Message | None:
        """Decode a peer's consensus message and make the cheap checks, or count and drop it.

        Decodable, from a member of the validator set (index and address
        agree), not for a finished height. Signatures are checked by the
        core, which also drops exact duplicates before they reach the WAL.
        """
        try:
            msg = decode_message(data, self.max_msg_bytes)
        except DecodeError:
            self.stats["bad_messages"] += 1
            return None
        valset = self.chain.valset
        if isinstance(msg, VoteMessage):
            v = msg.vote
            height = v.height
            if v.validator_index >= len(valset) \
                    or valset.address_at(v.validator_index) != v.validator_address:
                self.stats["bad_messages"] += 1
                return None
        else:
            height = msg.proposal.height
            if msg.block.height != height:
                self.stats["bad_messages"] += 1
                return None
        if height < self.chain.height:
            self.stats["stale_messages"] += 1
            return None
        return msg

    async def _on_direct(self, _peer: str, data: bytes) -> None:
        """A validator's proposal or vote arrived on its direct link: queue it for the core."""
        msg = self.admit(data)
        if msg is None:
            return
        if isinstance(msg, ProposalMessage):
            event: Any = ProposalReceived(message=msg, now_ms=now_ms())
        else:
            event = VoteReceived(vote=msg.vote, now_ms=now_ms())
        await self._send.send(event)

    async def _timer(self, action: ScheduleTimeout) -> None:
        await trio.sleep(action.delay_ms / 1000)
        await self._send.send(TimeoutFired(height=action.height, round=action.round,
                                           step=action.step, now_ms=now_ms()))

    def _note_ready(self) -> None:
        """Mempool callback: a transaction a block could include was admitted."""
        self._txs_changed.set()

    async def _txs_loop(self) -> None:
        """Answer the core's ``WaitForTxs`` once the mempool has work for a block."""
        while True:
            await self._txs_changed.wait()
            self._txs_changed = trio.Event()
            height = self._txs_wanted
            if height is not None and self.mempool.ready > 0:
                self._txs_wanted = None
                await self._send.send(TxsAvailable(height=height, now_ms=now_ms()))

    async def _sync_loop(self) -> None:
        """Fetch committed blocks when the core asks, or when peers are well ahead."""
        syncer = self.syncer
        if syncer is None:
            raise RuntimeError("ConsensusDriver.syncer must be set before run()")
        interval = STATUS_POLL_S
        while True:
            with trio.move_on_after(interval):
                await self._sync_wanted.wait()
            asked = self._sync_wanted.is_set()
            self._sync_wanted = trio.Event()
            await syncer.poll_status()
            behind = syncer.best_peer_height() >= self.chain.height + SYNC_AHEAD
            if asked or behind:
                await syncer.sync_once()
            interval = STATUS_POLL_S if asked or behind else min(interval * 2, STATUS_POLL_MAX_S)

    async def commit_fetched(self, peer: str, pairs: list[tuple[bytes, bytes]]) -> int:
        """``BlockSyncer`` callback: verify, then hand blocks to the core in order."""
        from consensus.catchup import SyncBlockError, decode_pair

        n = 0
        for raw_block, raw_commit in pairs:
            want = self.chain.height + 1
            try:
                block, commit = decode_pair(raw_block, raw_commit, want)
                if block.height < want:
                    continue
                self.chain.verify_fetched(block, commit)
            except (SyncBlockError, BlockRejected) as exc:
                if n:
                    return n
                raise SyncError(str(exc)) from None
            committed = self._committed
            await self._send.send(CommittedBlockReceived(block=block, commit=commit,
                                                         now_ms=now_ms()))
            with trio.move_on_after(10):
                while self.chain.height < block.height:
                    await committed.wait()
                    committed = self._committed
            if self.chain.height < block.height:
                log.warning("core did not commit synced block %d", block.height)
                return n
            n += 1
        if n:
            log.info("caught up to height %d from %s", self.chain.height, peer[-8:])
        return n

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Restore from the WAL and run consensus until cancelled."""
        from consensus.core import Core

        wal = FileWAL(self.wal_dir, height_of=record_height)
        try:
            for repair in wal.repairs:
                log.warning("WAL repaired on open: %s", repair)
            records = list(wal.records())
            core, actions = Core.restore(params=self.params, state=self.chain.state,
                                         signer=self.signer, app=self.app, records=records,
                                         now_ms=now_ms())
            log.info("consensus restored at height %d from %d WAL records",
                     self.chain.height + 1, len(records))
            async with trio.open_nursery() as nursery:
                await nursery.start(self.links.run)
                nursery.start_soon(self._sync_loop)
                nursery.start_soon(self._txs_loop)
                await self._execute(nursery, wal, actions)
                last_round = (core.height, core.round)
                async for event in self._recv:
                    try:
                        actions = core.handle(event)
                    except ConsensusError as exc:
                        log.warning("consensus rejected %s: %s", type(event).__name__, exc)
                        continue
                    await self._execute(nursery, wal, actions)
                    if (core.height, core.round) != last_round:
                        last_round = (core.height, core.round)
                        if self.metrics is not None:
                            self.metrics.observe_round(core.round)
                        if core.round > 0:
                            log.info("height %d moved to round %d", core.height, core.round)
        finally:
            try:
                # What this batch planned but did not write yet, then what the
                # planner still holds (records of peers' messages).
                held = [r for e in self.planner.flush() if isinstance(e, WriteWAL)
                        for r in e.records]
                if self._unwritten or held:
                    wal.append_many(self._unwritten + held)
                    self._unwritten = []
            finally:
                wal.close()

    async def _execute(self, nursery: trio.Nursery, wal: FileWAL, actions: list[Any]) -> None:
        """Plan one batch of core actions (:mod:`consensus.plan`) and perform the effects.

        Every record of the batch's ``WriteWAL`` effects is noted as unwritten
        before any effect runs: the core may already have executed a decided
        block (``apply_block``) while handling the event, so if a shutdown
        cancels us part way, :meth:`run`'s ``finally`` must still write the
        votes that decided it, or the restarted node cannot decide the same
        block (a single validator restarted after SIGTERM proposed a
        different block at that height and halted).
        """
        effects = self.planner.plan(actions)
        self._unwritten = [r for e in effects if isinstance(e, WriteWAL) for r in e.records]
        for effect in effects:
            await self._perform(nursery, wal, effect)

    async def _perform(self, nursery: trio.Nursery, wal: FileWAL, effect: Effect) -> None:
        """Carry out one effect; the order and WAL batching were decided by the planner.

        A ``WriteWAL`` runs in a worker thread (one fsync for the batch),
        shielded: ``to_thread`` would otherwise raise ``Cancelled`` at entry
        and drop the records; the thread call itself cannot be abandoned, so
        no half-written batch is left behind either.
        """
        if isinstance(effect, WriteWAL):
            records = list(effect.records)
            with trio.CancelScope(shield=True):  # once begun, written even on shutdown
                await self._write_wal(wal, records)
            del self._unwritten[:len(records)]
        elif isinstance(effect, Broadcast):
            self._broadcast(effect)
        elif isinstance(effect, ScheduleTimeout):
            nursery.start_soon(self._timer, effect)
        elif isinstance(effect, CommitBlock):
            self._commit(effect)
        elif isinstance(effect, TruncateWAL):
            wal.truncate_before_height(effect.keep_from_height)
        elif isinstance(effect, RequestSync):
            self._sync_wanted.set()
        elif isinstance(effect, WaitForTxs):
            self._txs_wanted = effect.height
            self._txs_changed.set()
        elif isinstance(effect, ReportEvidence):
            self.stats["evidence"] += 1
            log.warning("duplicate vote evidence: %s", effect.evidence)

    async def _write_wal(self, wal: FileWAL, records: list[bytes]) -> None:
        await trio.to_thread.run_sync(wal.append_many, records)

    def _broadcast(self, action: Broadcast) -> None:
        """Queue our message for every other validator (never blocks; see ConsensusLinks)."""
        data = encode_message(action.message)
        if len(data) > self.max_msg_bytes:  # the core sizes blocks to fit: should not happen
            log.error("not sending a %s of %d bytes (cap %d)", type(action.message).__name__,
                      len(data), self.max_msg_bytes)
            return
        self.links.broadcast(data)

    def _commit(self, action: CommitBlock) -> None:
        block = action.block
        self.chain.store_committed(block, action.commit, action.state,
                                   self.app.take_result(block.height))
        self._committed.set()
        self._committed = trio.Event()
        log.info("committed block %d (%d txs, app hash %s)", block.height, len(block.txs),
                 self.chain.ledger.app_hash.hex()[:16])


__all__ = ["ConsensusDriver", "LedgerApp"]
