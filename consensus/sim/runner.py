"""One seeded simulation of n validators running the real core, and its checks.

Everything random (network, crashes, which validators are faulty, what they
do) comes from ``random.Random(seed)`` and the event queue breaks ties by
insertion order, so a seed replays exactly: :attr:`SimResult.digest` is the
same on every run of the same seed and configuration.

The driver here runs the daemon's own :class:`consensus.plan.Planner` (the
order of effects and the WAL batching) and only performs the effects its
own way: WriteWAL -> MemWAL append; Broadcast -> send to every other node
through the simulated network; ScheduleTimeout -> virtual timer; CommitBlock
-> store block, save state; TruncateWAL -> drop old records; RequestSync ->
ask peers for committed blocks; WaitForTxs -> ``TxsAvailable`` after up to
``txs_delay_ms`` (the simulated app always has transactions; the delay
stands for their gossip).

Checks:
* agreement: no two honest nodes commit different blocks at one height;
  no honest validator ever sends two different votes (or proposals) for one
  height/round/step, crashes included; no evidence names an honest validator;
* validity: every committed block extends the previous one, carries the
  right app hash and a last commit that verifies, and holds app transactions;
* termination: after GST every honest node reaches the target height within
  ``liveness_bound_ms`` of virtual time.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from ..block import Block, Commit
from ..core import Core
from ..crypto import PrivateKey, Signer
from ..encoding import DecodeError, decode, encode, expect_list
from ..errors import InvalidMessageError
from ..events import (
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
from ..memwal import MemWAL
from ..messages import Message, ProposalMessage, VoteMessage, decode_message, encode_message
from ..plan import Effect, Planner, TruncateWAL, WriteWAL
from ..state import ChainState, ConsensusParams
from ..validators import ValidatorSet, verify_commit
from ..wal_api import record_event
from .app import SimApp, app_hash_after
from .byzantine import BadBlocks, Equivocate, RandomVotes, Silent, SplitBrain, Strategy
from .world import EventQueue, Network, NetworkConditions

CHAIN_ID = "oml-sim"
GENESIS_TIME_MS = 1_000


def sim_params() -> ConsensusParams:
    """Timeouts for the simulator: short, growing by half a base per round."""
    return ConsensusParams(timeout_propose_ms=800, timeout_propose_delta_ms=300,
                           timeout_prevote_ms=300, timeout_prevote_delta_ms=300,
                           timeout_precommit_ms=300, timeout_precommit_delta_ms=300,
                           timeout_commit_ms=0, gossip_interval_ms=1_000, clock_drift_ms=1_000)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    validators: int = 4
    byzantine: int = 1
    heights: int = 3
    strategy: str = "mixed"
    network: NetworkConditions = field(default_factory=NetworkConditions)
    #: crash-and-restart episodes of honest nodes before GST
    crashes: int = 1
    liveness_bound_ms: int = 60_000
    txs_per_block: int = 2
    tx_size: int = 16
    params: ConsensusParams = field(default_factory=sim_params)
    max_events: int = 400_000
    #: each node's clock is off the virtual time by up to this much (either way)
    max_clock_skew_ms: int = 250
    #: end the run at the first safety violation (the rest of the run proves nothing)
    stop_on_violation: bool = True
    #: with params.waits_for_txs: most delay before a WaitForTxs is answered
    txs_delay_ms: int = 1_500


@dataclass(slots=True)
class SimResult:
    seed: int
    safety_violations: list[str]
    liveness_failure: str | None
    heights: dict[int, int]
    messages: int
    events: int
    virtual_ms: int
    digest: str
    #: crash/restart episodes that really happened (a crash needs a batch to cut)
    restarts: int = 0
    partitioned: bool = False

    @property
    def ok(self) -> bool:
        return not self.safety_violations and self.liveness_failure is None


def validator_key(i: int) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"oml-sim-validator:%d" % i).digest())


class SimNode:
    """A validator's durable parts (WAL, block store, chain state) and its live core."""

    def __init__(self, index: int, signer: Signer, params: ConsensusParams,
                 genesis: ChainState, app: SimApp, strategy: Strategy | None) -> None:
        self.index, self.signer, self.params, self.app = index, signer, params, app
        self.strategy = strategy
        self.wal = MemWAL()
        #: the daemon's planner; held-back WAL records die with a crash
        self.planner = Planner()
        self.store: dict[int, tuple[Block, Commit]] = {}
        self.state = genesis
        self.core: Core | None = None
        self.incarnation = 0
        self.crash_pending = False

    @property
    def up(self) -> bool:
        return self.core is not None

    @property
    def honest(self) -> bool:
        return self.strategy is None


class Simulation:
    def __init__(self, config: SimConfig, seed: int) -> None:
        if not 0 <= config.byzantine < config.validators:
            raise ValueError("need 0 <= byzantine < validators")
        self.config, self.seed = config, seed
        self.rng = random.Random(seed)
        self.queue = EventQueue()
        n = config.validators
        self.net = Network(config.network, self.rng, n)
        signers = [Signer(validator_key(i)) for i in range(n)]
        valset = ValidatorSet.from_powers((s.public_key, 1) for s in signers)
        # node i holds the key at valset index i
        by_addr = {s.address: s for s in signers}
        self.signers = [by_addr[valset.address_at(i)] for i in range(n)]
        self.genesis = ChainState.genesis(CHAIN_ID, GENESIS_TIME_MS, valset)
        self.byzantine = set(self.rng.sample(range(n), config.byzantine))
        self.skew = [self.rng.randint(-config.max_clock_skew_ms, config.max_clock_skew_ms)
                     for _ in range(n)]
        self.honest = [i for i in range(n) if i not in self.byzantine]
        strategies = self._strategies()
        self.nodes = [SimNode(i, self.signers[i], config.params, self.genesis,
                              SimApp(config.txs_per_block, config.tx_size, tag=b"%d" % i),
                              strategies.get(i)) for i in range(n)]
        self.violations: list[str] = []
        self.decided: dict[int, bytes] = {}
        self.signed: dict[tuple[int, int, int, int], bytes] = {}
        self.messages = 0
        self.events = 0
        self.restarts = 0
        self.trace = hashlib.sha256()

    def _strategies(self) -> dict[int, Strategy]:
        kind = self.config.strategy
        out: dict[int, Strategy] = {}
        if kind in ("split", "mixed") and self.byzantine:
            camp = list(self.honest)
            self.rng.shuffle(camp)
            half = len(camp) // 2
            split = SplitBrain({i: self.signers[i] for i in self.byzantine}, CHAIN_ID,
                               set(camp[:half]), set(camp[half:]))
        for i in sorted(self.byzantine):
            k = kind if kind != "mixed" else self.rng.choice(
                ["equivocate", "random", "split", "silent", "badblocks"])
            if k == "equivocate":
                out[i] = Equivocate(self.signers[i], CHAIN_ID, self.rng)
            elif k == "random":
                out[i] = RandomVotes(self.signers[i], CHAIN_ID, self.rng)
            elif k == "silent":
                out[i] = Silent()
            elif k == "badblocks":
                out[i] = BadBlocks(self.signers[i], CHAIN_ID)
            elif k == "split":
                out[i] = split
            else:
                raise ValueError(f"unknown strategy {k!r}")
        return out

    # ------------------------------------------------------------------ run

    def run(self) -> SimResult:
        cfg = self.config
        self.queue.now = GENESIS_TIME_MS
        for node in self.nodes:
            node.core = Core(cfg.params, self.genesis, node.app, node.signer)
            self._execute(node, node.core.handle(Start(now_ms=self._clock(node.index))))
        self._plan_crashes()
        deadline = cfg.network.gst_ms + cfg.liveness_bound_ms
        liveness: str | None = None
        while True:
            if all(self.nodes[i].state.height >= cfg.heights for i in self.honest):
                break
            if not self.queue or self.queue.now > deadline:
                liveness = (f"honest nodes stuck at heights "
                            f"{[self.nodes[i].state.height for i in self.honest]} "
                            f"after {self.queue.now} ms (GST {cfg.network.gst_ms} ms)")
                break
            if self.violations and cfg.stop_on_violation:
                break
            if self.events >= cfg.max_events:
                liveness = f"event budget of {cfg.max_events} exhausted at {self.queue.now} ms"
                break
            self.events += 1
            self._dispatch(self.queue.pop())
        return SimResult(seed=self.seed, safety_violations=self.violations,
                         liveness_failure=liveness,
                         heights={i: n.state.height for i, n in enumerate(self.nodes)},
                         messages=self.messages, events=self.events, virtual_ms=self.queue.now,
                         digest=self.trace.hexdigest(), restarts=self.restarts,
                         partitioned=self.net.partition is not None)

    def _plan_crashes(self) -> None:
        gst = self.config.network.gst_ms
        for _ in range(self.config.crashes):
            if not self.honest or gst < 2_000:
                return
            i = self.rng.choice(self.honest)
            at = self.rng.randrange(GENESIS_TIME_MS, gst // 2)
            down = self.rng.randrange(200, gst // 2)
            self.queue.push(at, ("crash", i, down))

    def _dispatch(self, item: tuple) -> None:
        kind = item[0]
        now = self.queue.now
        if kind == "deliver":
            _, dst, data = item
            node = self.nodes[dst]
            if node.core is None:
                return
            try:
                msg = decode_message(data)
            except DecodeError:
                return
            local = self._clock(dst)
            ev = (VoteReceived(vote=msg.vote, now_ms=local) if isinstance(msg, VoteMessage)
                  else ProposalReceived(message=msg, now_ms=local))
            self._execute(node, node.core.handle(ev))
        elif kind == "timeout":
            _, i, inc, h, r, step = item
            node = self.nodes[i]
            if node.core is None or node.incarnation != inc:
                return
            self._execute(node, node.core.handle(TimeoutFired(height=h, round=r, step=step,
                                                              now_ms=self._clock(i))))
        elif kind == "txs":
            _, i, inc, h = item
            node = self.nodes[i]
            if node.core is None or node.incarnation != inc:
                return
            self._execute(node, node.core.handle(TxsAvailable(height=h, now_ms=self._clock(i))))
        elif kind == "crash":
            _, i, down = item
            node = self.nodes[i]
            if node.core is not None:
                node.crash_pending = True
                self.queue.push(now + down, ("restart", i))
        elif kind == "restart":
            node = self.nodes[item[1]]
            if node.core is None:
                core, actions = Core.restore(self.config.params, node.state, node.app,
                                             node.signer, node.wal.records(),
                                             self._clock(node.index))
                node.core = core
                self.restarts += 1
                self.trace.update(b"restart%d@%d" % (node.index, now))
                self._execute(node, actions)
            else:  # the crash point never came (no batch ran while it was pending)
                node.crash_pending = False
        elif kind == "sync_req":
            _, src, dst, height = item
            peer = self.nodes[dst]
            if peer.core is None:
                return
            for h in range(height, min(height + 4, peer.state.height + 1)):
                block, commit = peer.store[h]
                data = encode([block.to_value(), commit.to_value()])
                for delay in self.net.delays(dst, src, now):
                    self.messages += 1
                    self.queue.push(now + delay, ("sync_resp", src, data))
        elif kind == "sync_resp":
            _, dst, data = item
            node = self.nodes[dst]
            if node.core is None:
                return
            try:
                f = expect_list(decode(data), 2)
                block, commit = Block.from_value(f[0]), Commit.from_value(f[1])
            except (DecodeError, InvalidMessageError):
                return
            self._execute(node, node.core.handle(CommittedBlockReceived(
                block=block, commit=commit, now_ms=self._clock(dst))))

    def _clock(self, i: int) -> int:
        """Node ``i``'s reading of the (virtual) wall clock."""
        return max(0, self.queue.now + self.skew[i])

    # --------------------------------------------------------------- driver

    def _execute(self, node: SimNode, actions: list[Action]) -> None:
        """Plan the actions as the daemon does (:mod:`consensus.plan`), then perform the
        effects; a pending crash cuts the effects at a random point (often right after
        a WAL write, before the send it guards) and loses the records held back."""
        effects = node.planner.plan(actions)
        cut = len(effects)
        crash = node.crash_pending and bool(actions)
        if crash:
            writes = [k for k, e in enumerate(effects) if isinstance(e, WriteWAL)]
            if writes and self.rng.random() < 0.5:
                cut = self.rng.choice(writes) + 1  # right after a write, before its send
            else:
                cut = self.rng.randrange(0, len(effects) + 1)
        for effect in effects[:cut]:
            self._perform(node, effect)
        if crash:
            node.crash_pending = False
            node.core = None
            node.planner.crashed()
            node.incarnation += 1
            self.trace.update(b"crash%d@%d:%d" % (node.index, self.queue.now, cut))

    def _perform(self, node: SimNode, e: Effect) -> None:
        now = self.queue.now
        if isinstance(e, WriteWAL):
            for record in e.records:
                node.wal.append(record)
                if node.honest:
                    self._check_persisted_signature(node, record)
        elif isinstance(e, Broadcast):
            self._send(node, e.message, now)
        elif isinstance(e, ScheduleTimeout):
            self.queue.push(now + e.delay_ms, ("timeout", node.index, node.incarnation,
                                               e.height, e.round, e.step))
        elif isinstance(e, CommitBlock):
            self._commit(node, e)
        elif isinstance(e, TruncateWAL):
            node.wal.truncate_before_height(e.keep_from_height)
        elif isinstance(e, ReportEvidence):
            culprit = node.core.valset.index_of(e.evidence.validator_address) \
                if node.core is not None else None
            if culprit is not None and culprit not in self.byzantine:
                self.violations.append(f"evidence against honest validator {culprit}")
        elif isinstance(e, WaitForTxs):
            delay = self.rng.randint(0, self.config.txs_delay_ms)
            self.queue.push(now + delay, ("txs", node.index, node.incarnation, e.height))
        elif isinstance(e, RequestSync):
            peers = [p for p in range(len(self.nodes)) if p != node.index]
            for p in self.rng.sample(peers, min(2, len(peers))):
                for delay in self.net.delays(node.index, p, now):
                    self.messages += 1
                    self.queue.push(now + delay, ("sync_req", node.index, p, e.height))

    def _send(self, node: SimNode, msg: Message, now: int) -> None:
        peers = [p for p in range(len(self.nodes)) if p != node.index]
        if node.strategy is None:
            self._check_honest_signature(node.index, msg)
            sends = [(p, msg) for p in peers]
        else:
            sends = node.strategy.outgoing(node.index, msg, peers)
        cache: dict[int, bytes] = {}
        for p, m in sends:
            data = cache.get(id(m))
            if data is None:
                data = cache[id(m)] = encode_message(m)
            for delay in self.net.delays(node.index, p, now):
                self.messages += 1
                self.queue.push(now + delay, ("deliver", p, data))

    def _check_persisted_signature(self, node: SimNode, record: bytes) -> None:
        """Signatures that reached the WAL count even if a crash kept them from being sent."""
        ev = record_event(record)
        if isinstance(ev, VoteReceived) and ev.vote.validator_address == node.signer.address:
            self._check_honest_signature(node.index, VoteMessage(vote=ev.vote))
        elif isinstance(ev, ProposalReceived) and \
                ev.message.proposal.verify_signature(CHAIN_ID, node.signer.public_key):
            self._check_honest_signature(node.index, ev.message)

    def _check_honest_signature(self, index: int, msg: Message) -> None:
        if isinstance(msg, VoteMessage):
            v = msg.vote
            key = (index, v.height, v.round, int(v.type))
            bid = v.block_id
        else:
            assert isinstance(msg, ProposalMessage)
            p = msg.proposal
            key = (index, p.height, p.round, 0)
            bid = p.block_id
        prev = self.signed.setdefault(key, bid)
        if prev != bid:
            self.violations.append(f"honest validator {index} signed two messages for "
                                   f"height/round/step {key[1:]}")

    def _commit(self, node: SimNode, a: CommitBlock) -> None:
        block, commit = a.block, a.commit
        h = block.height
        bid = block.id()
        if node.honest:
            self._check_valid(node, block, commit)
            first = self.decided.setdefault(h, bid)
            if first != bid:
                self.violations.append(f"agreement violated at height {h}: node {node.index} "
                                       f"committed {bid.hex()[:12]}, another {first.hex()[:12]}")
        node.store[h] = (block, commit)
        node.state = a.state
        self.trace.update(b"commit%d:%d:" % (node.index, h) + bid)

    def _check_valid(self, node: SimNode, block: Block, commit: Commit) -> None:
        h = block.height
        prev = node.state
        problems = []
        try:
            block.validate_basic()
            verify_commit(CHAIN_ID, self.genesis.validators, block.id(), h, commit)
            if h > 1:
                assert block.last_commit is not None
                verify_commit(CHAIN_ID, self.genesis.validators, prev.last_block_id, h - 1,
                              block.last_commit)
        except InvalidMessageError as exc:
            problems.append(str(exc))
        if block.header.prev_block_id != prev.last_block_id:
            problems.append("does not extend the node's previous block")
        if block.header.app_hash != prev.app_hash:
            problems.append("wrong app hash")
        if h > 1 and prev.app_hash != app_hash_after(node.store[h - 1][0]):
            problems.append("app hash chain broken")
        if block.header.time_ms <= prev.last_block_time_ms and h > 1:
            problems.append("time not increasing")
        if any(not tx.startswith(b"simtx:") for tx in block.txs):
            problems.append("foreign transaction")
        if problems:
            self.violations.append(f"validity violated at height {h} on node {node.index}: "
                                   + "; ".join(problems))


def run_simulation(config: SimConfig, seed: int) -> SimResult:
    """Run one seeded simulation and check agreement, validity and termination."""
    return Simulation(config, seed).run()
