"""Test harness: validators running the real core on the real file WAL and LMDB block store.

A seeded virtual clock and an in-process network deliver messages; nothing
sleeps. A node can be crashed at any step of executing its actions (after
a Persist and before the Broadcast it guards, between storing a block and
saving the chain state, in the middle of a WAL append with a torn frame
left on disk, ...). A crash drops the core, its pending actions and timers,
and closes the WAL and the block store; a restart reopens them from disk and
calls ``Core.restore``. A node that falls behind catches up through
``consensus.catchup.CatchUp`` against the other nodes' block stores.

Every vote and proposal a node signed is recorded from two places, what it
broadcast and what its WAL acknowledged, so the safety check sees signatures
that never left the node too.

The driver runs the daemon's own :class:`consensus.plan.Planner` (WAL
records held back and written with one ``append_many``, one fsync, before
the next ``Broadcast`` or ``CommitBlock``; ``TruncateWAL`` after each
commit), so the tests check the daemon's order, not a copy of it. It
performs ``CommitBlock`` as the daemon's store does: save the block
(skipped if a replay decides it again), then the chain state (atomic file
replace).
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from consensus.block import Block
from consensus.blockstore import BlockStore
from consensus.catchup import CatchUp
from consensus.core import Core
from consensus.crypto import Signer
from consensus.events import (
    Action,
    Broadcast,
    CommitBlock,
    CommittedBlockReceived,
    ProposalReceived,
    ReportEvidence,
    RequestSync,
    ScheduleTimeout,
    Start,
    TimeoutFired,
    TxsAvailable,
    VoteReceived,
    WaitForTxs,
)
from consensus.messages import ProposalMessage, VoteMessage, decode_message, encode_message
from consensus.plan import Effect, Planner, TruncateWAL, WriteWAL
from consensus.state import ChainState, ConsensusParams
from consensus.wal import FileWAL, _frame
from consensus.wal_api import record_event, record_height
from tests.consensus._persist_chain import make_signers

CHAIN_ID = "crash-test"
PARAMS = ConsensusParams(timeout_propose_ms=300, timeout_propose_delta_ms=100,
                         timeout_prevote_ms=100, timeout_prevote_delta_ms=100,
                         timeout_precommit_ms=100, timeout_precommit_delta_ms=100,
                         gossip_interval_ms=400, clock_drift_ms=500)

#: A crash point: (node, what is about to run) -> crash now? ``what`` is an action or
#: one of the strings "after-save-block", "after-save-state", "torn-append".
CrashRule = Callable[["Node", object], bool]


class KVApp:
    """Deterministic application: app hash chains the transaction roots."""

    def __init__(self, app_hash: bytes, index: int) -> None:
        self.app_hash = app_hash
        self.index = index
        self.applied: list[int] = []

    def propose_txs(self, height: int, max_bytes: int) -> list[bytes]:
        return [b"tx-%d-from-%d" % (height, self.index)]

    def validate_block(self, block: Block) -> None:
        return None

    def apply_block(self, block: Block) -> bytes:
        self.app_hash = hashlib.sha256(self.app_hash + block.header.txs_root).digest()
        self.applied.append(block.height)
        return self.app_hash


@dataclass
class Node:
    index: int
    signer: Signer
    home: Path
    sync_wal: bool
    core: Core | None = None
    wal: FileWAL | None = None
    store: BlockStore | None = None
    incarnation: int = 0
    steps: int = 0
    crashes: int = 0
    #: (height, round, type) -> block ids signed, from broadcasts and acknowledged WAL records
    signed_votes: dict[tuple[int, int, int], set[bytes]] = field(default_factory=dict)
    signed_proposals: dict[tuple[int, int], set[bytes]] = field(default_factory=dict)
    wal_repairs: int = 0
    #: the daemon's planner; the records it holds back die with a crash
    planner: Planner = field(default_factory=Planner)

    @property
    def up(self) -> bool:
        return self.core is not None

    @property
    def state_path(self) -> Path:
        return self.home / "state.bin"

    def load_state(self, genesis: ChainState) -> ChainState:
        if self.state_path.exists():
            return ChainState.decode(self.state_path.read_bytes())
        return genesis

    def save_state(self, state: ChainState) -> None:
        tmp = self.home / "state.tmp"
        with open(tmp, "wb") as f:
            f.write(state.encode())
            f.flush()
            if self.sync_wal:
                os.fsync(f.fileno())
        os.replace(tmp, self.state_path)


class Crash(Exception):
    """Raised inside action execution to model the process dying there."""


class Cluster:
    def __init__(self, home: Path, *, n: int = 4, seed: int = 0,
                 crash_rule: CrashRule | None = None, sync_wal: bool = True,
                 max_delay_ms: int = 20, downtime_ms: tuple[int, int] = (50, 600),
                 resume: bool = False) -> None:
        """``resume=True`` restarts every node from what ``home`` holds (after the whole
        cluster was killed), with the clock set after the newest stored block."""
        self.rng = random.Random(seed)
        self.valset, signers = make_signers(n)
        self.genesis = ChainState.genesis(CHAIN_ID, 0, self.valset)
        self.nodes = [Node(i, s, home / f"node{i}", sync_wal) for i, s in enumerate(signers)]
        self.crash_rule = crash_rule or (lambda node, what: False)
        self.max_delay_ms = max_delay_ms
        self.downtime_ms = downtime_ms
        self.now = 0
        self._queue: list[tuple[int, int, int, int, object]] = []
        self._seq = 0
        self.delivered = 0
        #: blocks handed to cores by catch-up, and WAL records replayed on restarts
        self.synced_blocks = 0
        self.evidence: list[object] = []
        if resume:
            self.now = 1 + max(n.load_state(self.genesis).last_block_time_ms for n in self.nodes)
            for node in self.nodes:
                self.restart(node)
            return
        for node in self.nodes:
            node.home.mkdir(parents=True)
            self._open(node)
            node.core = Core(PARAMS, self.genesis, KVApp(self.genesis.app_hash, node.index),
                             node.signer)
            self._run(node, node.core.handle(Start(now_ms=0)))

    # --- scheduling ---------------------------------------------------------

    def _push(self, at: int, node: Node, item: object, incarnation: int | None = None) -> None:
        self._seq += 1
        inc = node.incarnation if incarnation is None else incarnation
        heapq.heappush(self._queue, (at, self._seq, node.index, inc, item))

    def run_until(self, done: Callable[[], bool], max_ms: int) -> bool:
        """Process events until ``done()`` or the virtual clock passes ``max_ms``."""
        while self._queue and not done():
            at, _, idx, inc, item = heapq.heappop(self._queue)
            if at > max_ms:
                heapq.heappush(self._queue, (at, 0, idx, inc, item))
                return False
            self.now = max(self.now, at)
            node = self.nodes[idx]
            if item == "restart":
                self.restart(node)
                continue
            if not node.up or inc != node.incarnation:
                continue  # sent to a dead node, or a timer of a previous life
            assert node.core is not None
            self.delivered += 1
            self._run(node, node.core.handle(item))  # type: ignore[arg-type]
        return done()

    # --- node lifecycle -----------------------------------------------------

    def _open(self, node: Node) -> None:
        node.wal = FileWAL(node.home / "wal", height_of=record_height, sync=node.sync_wal)
        node.wal_repairs += len(node.wal.repairs)
        node.store = BlockStore.open(node.home / "blocks", map_size=1 << 26,
                                     sync=node.sync_wal)
        for record in node.wal.records():  # what survived is what the node signed
            self._note_record(node, record)

    def crash(self, node: Node) -> None:
        node.core = None
        node.planner.crashed()
        node.crashes += 1
        node.incarnation += 1
        assert node.wal is not None and node.store is not None
        node.wal.close()
        node.store.close()
        node.wal = node.store = None
        lo, hi = self.downtime_ms
        self._push(self.now + self.rng.randint(lo, hi), node, "restart")

    def restart(self, node: Node) -> None:
        self._open(node)
        state = node.load_state(self.genesis)
        assert node.wal is not None
        node.core, actions = Core.restore(PARAMS, state, KVApp(state.app_hash, node.index),
                                          node.signer, node.wal.records(), self.now)
        self._run(node, actions)

    # --- executing actions ----------------------------------------------------

    def _crash_point(self, node: Node, what: object) -> None:
        node.steps += 1
        if self.crash_rule(node, what):
            raise Crash()

    def _run(self, node: Node, actions: list[Action]) -> None:
        try:
            self._execute(node, actions)
        except Crash:
            self.crash(node)

    def _execute(self, node: Node, actions: list[Action]) -> None:
        """Plan the actions as the daemon does (:mod:`consensus.plan`), then perform them,
        with a crash point before every effect but a WAL write (which has its own)."""
        for effect in node.planner.plan(actions):
            if not isinstance(effect, WriteWAL):
                self._crash_point(node, effect)
            self._perform(node, effect)

    def _perform(self, node: Node, effect: Effect) -> None:
        if isinstance(effect, WriteWAL):
            self._persist(node, list(effect.records))
        elif isinstance(effect, Broadcast):
            self._broadcast(node, effect)
        elif isinstance(effect, ScheduleTimeout):
            at = self.now + effect.delay_ms
            self._push(at, node, TimeoutFired(height=effect.height, round=effect.round,
                                              step=effect.step, now_ms=at))
        elif isinstance(effect, CommitBlock):
            self._commit(node, effect)
        elif isinstance(effect, TruncateWAL):
            assert node.wal is not None
            node.wal.truncate_before_height(effect.keep_from_height)
        elif isinstance(effect, ReportEvidence):
            self.evidence.append(effect.evidence)
        elif isinstance(effect, RequestSync):
            self._sync(node, effect.height)
        elif isinstance(effect, WaitForTxs):
            # KVApp always has a transaction: answer at once, as a mempool that holds one would.
            self._push(self.now, node, TxsAvailable(height=effect.height, now_ms=self.now))

    def _persist(self, node: Node, records: list[bytes]) -> None:
        assert node.wal is not None
        if self.crash_rule(node, "torn-append"):
            # The process dies inside the append: part of a frame reaches the disk,
            # and nothing after it ran.
            seg = sorted((node.home / "wal").glob("seg-*.wal"))
            frame = _frame(record_height(records[0]), records[0])
            if seg:
                with open(seg[-1], "ab") as f:
                    f.write(frame[: self.rng.randrange(1, len(frame))])
            raise Crash()
        node.wal.append_many(records)
        for record in records:
            self._note_record(node, record)
        self._crash_point(node, ("persisted", records))

    def _note_record(self, node: Node, record: bytes) -> None:
        ev = record_event(record)
        if isinstance(ev, VoteReceived) and ev.vote.validator_address == node.signer.address:
            v = ev.vote
            node.signed_votes.setdefault((v.height, v.round, int(v.type)), set()).add(v.block_id)
        elif isinstance(ev, ProposalReceived):
            p = ev.message.proposal
            if p.verify_signature(CHAIN_ID, node.signer.public_key):
                node.signed_proposals.setdefault((p.height, p.round), set()).add(p.block_id)

    def _broadcast(self, node: Node, action: Broadcast) -> None:
        msg = action.message
        if isinstance(msg, VoteMessage) and msg.vote.validator_address == node.signer.address:
            v = msg.vote
            node.signed_votes.setdefault((v.height, v.round, int(v.type)), set()).add(v.block_id)
        elif isinstance(msg, ProposalMessage) and \
                msg.proposal.verify_signature(CHAIN_ID, node.signer.public_key):
            p = msg.proposal
            node.signed_proposals.setdefault((p.height, p.round), set()).add(p.block_id)
        wire = encode_message(msg)
        for other in self.nodes:
            if other is node or not other.up:
                continue
            decoded = decode_message(wire)
            at = self.now + self.rng.randint(1, self.max_delay_ms)
            ev = (VoteReceived(vote=decoded.vote, now_ms=at) if isinstance(decoded, VoteMessage)
                  else ProposalReceived(message=decoded, now_ms=at))
            self._push(at, other, ev)

    def _commit(self, node: Node, action: CommitBlock) -> None:
        assert node.store is not None and node.wal is not None
        block = action.block
        if node.store.height >= block.height:
            # A replay decided a block we had stored before the crash: it must be the same.
            assert node.store.load_block(block.height).id() == block.id()
        else:
            node.store.save_block(block, action.commit)
        self._crash_point(node, "after-save-block")
        node.save_state(action.state)
        self._crash_point(node, "after-save-state")

    def _sync(self, node: Node, height: int) -> None:
        """Fetch committed blocks from live peers' stores, verified by CatchUp."""
        assert node.core is not None
        st = node.core.state
        cu = CatchUp(chain_id=CHAIN_ID, valset=st.validators, height=st.height,
                     last_block_id=st.last_block_id, batch=4)
        peers = {f"n{o.index}": o for o in self.nodes if o is not node and o.up}
        for name, peer in peers.items():
            assert peer.store is not None
            cu.on_peer_status(name, peer.store.sync_height(), peer.store.sync_base())
        delay = 0
        for _ in range(100):
            reqs = cu.next_requests()
            if not reqs:
                break
            for req in reqs:
                store = peers[req.peer].store
                assert store is not None
                pairs = []
                for h in range(req.first, req.last + 1):
                    pair = store.sync_block(h)
                    if pair is None:
                        break
                    pairs.append(pair)
                result = cu.on_blocks(req.peer, pairs)
                assert not result.rejected, result.rejected
                for v in result.ready:
                    delay += 1
                    self.synced_blocks += 1
                    self._push(self.now + delay, node,
                               CommittedBlockReceived(block=v.block, commit=v.commit,
                                                      now_ms=self.now + delay))

    # --- checks -------------------------------------------------------------------

    def heights(self) -> list[int]:
        return [n.store.height if n.store is not None else -1 for n in self.nodes]

    def all_reached(self, height: int) -> Callable[[], bool]:
        return lambda: all(n.up and n.store is not None and n.store.height >= height
                           for n in self.nodes)

    def check_no_double_sign(self) -> None:
        for node in self.nodes:
            for key, ids in node.signed_votes.items():
                assert len(ids) == 1, f"node {node.index} signed conflicting votes at {key}: {ids}"
            for key, ids in node.signed_proposals.items():
                assert len(ids) == 1, f"node {node.index} proposed twice at {key}"

    def check_agreement(self, upto: int) -> None:
        ids: dict[int, bytes] = {}
        for node in self.nodes:
            assert node.store is not None
            for h in range(1, min(upto, node.store.height) + 1):
                bid = node.store.load_block(h).id()
                assert ids.setdefault(h, bid) == bid, f"fork at height {h}"

    def close(self) -> None:
        for node in self.nodes:
            if node.wal is not None:
                node.wal.close()
            if node.store is not None:
                node.store.close()
