"""The consensus driver: runs the sans-IO core with trio timers, libp2p and the file WAL.

One input queue (CometBFT's receiveRoutine): peers' proposals and votes,
fired timeouts and blocks fetched by sync all become core events on one
trio channel, handled one at a time by :meth:`ConsensusDriver.run`. The
actions each event produces are executed in order:

``Persist``          appended to the WAL, fsynced (in a worker thread, one fsync
                     for all pending records) before the next ``Broadcast`` or
                     ``CommitBlock``, so our vote is durable before anyone sees it;
``Broadcast``        encoded and published on :data:`CONSENSUS_TOPIC`;
``ScheduleTimeout``  a trio task that sleeps, then queues ``TimeoutFired``;
``CommitBlock``      the block is stored, indexed and announced
                     (``Chain.store_committed``; the ledger already executed it
                     when the core called ``Application.apply_block``), the
                     mempool drops its transactions, and the WAL drops the
                     records of this height and below;
``RequestSync``      wakes the sync task, which fetches blocks from peers and
                     queues them as ``CommittedBlockReceived``;
``WaitForTxs``       (``create_empty_blocks`` off, or an interval set) arms the
                     txs task, which queues ``TxsAvailable`` as soon as the
                     mempool holds a transaction a block could include; the
                     mempool wakes it on every such admission, so an idle node
                     polls nothing;
``ReportEvidence``   logged (the ledger has no slashing for double signing).

Consensus messages travel by gossipsub. The topic validator only decodes
and checks that the signer is in the validator set and the height is not
stale (cheap, runs at every hop); signatures are checked by the core.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
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
    Persist,
    ProposalReceived,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    TimeoutFired,
    TxsAvailable,
    VoteReceived,
    WaitForTxs,
)
from consensus.messages import ProposalMessage, VoteMessage, decode_message, encode_message
from consensus.state import ConsensusParams
from consensus.wal import FileWAL
from consensus.wal_api import record_height
from net.errors import NetError

from .chain import BlockRejected, Chain
from .config import Config
from .mempool import Mempool
from .sync import BlockSyncer, SyncError
from .txcheck import CachedCheck, order_for_block

log = logging.getLogger(__name__)

CONSENSUS_TOPIC = "oml/consensus/1"
#: Room left in a gossip message around the block's transactions.
BLOCK_OVERHEAD_BYTES = 64 * 1024
#: Most transactions per proposal. Bigger blocks amortise the per-height
#: messages, but a proposal must be built, gossiped, decoded and checked by
#: every validator within timeout_propose; on a loaded 2-core testnet 4,000
#: transfers already missed it now and then (a wasted round).
MAX_BLOCK_TXS = 2_000
INBOX_SIZE = 4096
DECODED_CACHE = 16
#: Peers' records waiting for the next fsync are flushed once this many pile up.
WAL_PENDING_MAX = 256
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
        self._decoded: OrderedDict[bytes, Any] = OrderedDict()
        self._wal_pending: list[bytes] = []
        # The height whose WaitForTxs is not answered yet, and the wake-up the
        # mempool sets whenever it admits a transaction a block could include.
        self._txs_wanted: int | None = None
        self._txs_changed = trio.Event()
        mempool.on_ready = self._note_ready

    # --- inputs ---------------------------------------------------------------------

    def _decode(self, data: bytes) -> Any:
        """Decode a consensus message, re-using the validator's work for the same bytes.

        The topic validator decodes every message and the pump needs it
        decoded again; a proposal carries a whole block, so the last few
        decoded messages are kept by content.
        """
        msg = self._decoded.pop(data, None)
        if msg is None:
            msg = decode_message(data, self.max_msg_bytes)
        return msg

    def validate(self, _origin: str, data: bytes) -> bool:
        """Gossip validator: decodable, from a validator, not for a finished height."""
        try:
            msg = self._decode(data)
        except DecodeError:
            self.stats["bad_messages"] += 1
            return False
        valset = self.chain.valset
        if isinstance(msg, VoteMessage):
            v = msg.vote
            height = v.height
            if v.validator_index >= len(valset) \
                    or valset.address_at(v.validator_index) != v.validator_address:
                self.stats["bad_messages"] += 1
                return False
        else:
            height = msg.proposal.height
            if msg.block.height != height:
                self.stats["bad_messages"] += 1
                return False
        if height < self.chain.height:
            self.stats["stale_messages"] += 1
            return False
        self._decoded[data] = msg
        while len(self._decoded) > DECODED_CACHE:
            self._decoded.popitem(last=False)
        return True

    async def _pump_messages(self, channel: Any) -> None:
        async for _origin, data in channel:
            try:
                msg = self._decode(data)
            except DecodeError:
                continue
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
            messages = self.transport.subscribe(CONSENSUS_TOPIC, self.validate, buffer=1024)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump_messages, messages)
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
                if self._wal_pending:
                    wal.append_many(self._wal_pending)
                    self._wal_pending = []
            finally:
                wal.close()

    async def _flush(self, wal: FileWAL) -> None:
        """Make every pending WAL record durable (one fsync, off the event loop).

        Shielded: once the records leave ``_wal_pending`` they are written,
        even if a shutdown arrives first (``to_thread`` would otherwise raise
        ``Cancelled`` at entry and drop them). Dropping them lost our own
        precommit after the ledger had executed the block, and a single
        validator restarted after SIGTERM proposed a different block at that
        height and halted. The thread call itself cannot be abandoned, so no
        half-written batch is left behind either.
        """
        if self._wal_pending:
            records, self._wal_pending = self._wal_pending, []
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(wal.append_many, records)

    async def _execute(self, nursery: trio.Nursery, wal: FileWAL, actions: list[Any]) -> None:
        """Run one batch of core actions in order.

        ``Persist`` records are collected and made durable (one fsync) right
        before the next action that lets anything out of the node: our own
        message (``Broadcast``) or a stored block (``CommitBlock``). That is
        the guarantee that matters (CometBFT syncs its WAL only for its own
        messages too): nothing we signed is seen by a peer before the WAL
        holds it. Records of peers' messages that are lost in a crash are as
        if never received; the core's re-sends and block sync recover them.

        All of the batch's records are queued before any action runs: the
        core may already have executed a decided block (``apply_block``)
        while handling the event, so if a shutdown cancels us at an early
        ``Broadcast``, :meth:`run`'s ``finally`` must still write the votes
        that decided it, or the restarted node cannot decide the same block.
        """
        self._wal_pending.extend(a.record for a in actions if isinstance(a, Persist))
        for action in actions:
            if isinstance(action, (Broadcast, CommitBlock)):
                await self._flush(wal)
            if isinstance(action, Broadcast):
                await self._broadcast(action)
            elif isinstance(action, ScheduleTimeout):
                nursery.start_soon(self._timer, action)
            elif isinstance(action, CommitBlock):
                self._commit(wal, action)
            elif isinstance(action, RequestSync):
                self._sync_wanted.set()
            elif isinstance(action, WaitForTxs):
                self._txs_wanted = action.height
                self._txs_changed.set()
            elif isinstance(action, ReportEvidence):
                self.stats["evidence"] += 1
                log.warning("duplicate vote evidence: %s", action.evidence)
        if len(self._wal_pending) >= WAL_PENDING_MAX:
            await self._flush(wal)

    async def _broadcast(self, action: Broadcast) -> None:
        try:
            await self.transport.publish(CONSENSUS_TOPIC, encode_message(action.message))
        except NetError as exc:  # gossip is best effort; the core re-sends
            log.warning("publishing %s failed: %s", type(action.message).__name__, exc)

    def _commit(self, wal: FileWAL, action: CommitBlock) -> None:
        block = action.block
        self.chain.store_committed(block, action.commit, action.state,
                                   self.app.take_result(block.height))
        # The state of `block.height` is durable now, and `Core.restore` skips
        # records at or below the saved height, so the WAL keeps only later ones.
        wal.truncate_before_height(block.height + 1)
        self._committed.set()
        self._committed = trio.Event()
        log.info("committed block %d (%d txs, app hash %s)", block.height, len(block.txs),
                 self.chain.ledger.app_hash.hex()[:16])


__all__ = ["CONSENSUS_TOPIC", "ConsensusDriver", "LedgerApp"]
