"""Chaos under load: kill, freeze and restart validators while transfers flow, then check.

    python bench/chaos.py [--minutes 5] [--seed N] [--keep DIR]

Starts a fresh local testnet (4 validators, one OS process each, every
server on port 0, wired through RPC ``dial_peers`` as :class:`Testnet`
does) and two kinds of clients, threads of this process:

- committers: one account each, one ``broadcast_tx_commit`` at a time to a
  random healthy node; the height it returns is an acknowledged commit.
  A call that times out or is refused as a duplicate is retried with the
  very same bytes (so it is the same transaction) until the ``tx`` RPC or
  a later ``broadcast_tx_commit`` names its height;
- flooders: batches of ``broadcast_tx_sync`` (the load), with a window of
  uncommitted nonces; each time an account's committed nonce advances, the
  newest committed transaction is looked up with ``tx`` and its height is
  an acknowledged commit too.

Meanwhile the fault loop picks a random validator and a random fault:
``kill`` (SIGKILL, down a few seconds, started again: new ports, re-wired),
``stop`` (SIGSTOP, frozen a few seconds, SIGCONT) or ``restart`` (SIGTERM,
started again). Faults never overlap, so at most one validator in four (a
quarter of the voting power, under the third BFT tolerates) is faulty at a
time. After each heal it measures the recovery: the time until a majority
of the validators passes the highest height seen at the heal, and until
the healed node itself does (it rejoined).

At the end every node is running again, the clients stop, and once every
node holds the top height, every node's blocks 1..top are fetched and
checked (:mod:`node.chaos`): no fork, identical app hashes, every
acknowledged transaction in its block on every node, liveness within
``--liveness-s`` of each heal, and every healed node rejoining. Prints the
fault counts, transaction counts, heights, recovery times and the checks;
exits 1 when a check fails. Node logs are in ``DIR/testnet/node<i>/node.log``.

Every process it starts is stopped on the way out, also on Ctrl-C or
SIGTERM (a frozen node is sent SIGCONT first, so it can stop cleanly).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from consensus.crypto import PrivateKey, Signer, sha256
from node.chaos import (
    Acked,
    BlockRecord,
    Check,
    Heal,
    check_acked_txs,
    check_app_hashes,
    check_converged,
    check_liveness,
    check_no_fork,
    check_rejoin,
    lost_acked,
    max_p50,
    table,
)
from node.ledger import TransferBody, build_tx
from node.mempool import CODE_DUPLICATE
from node.rpc_client import RpcClient, RpcClientError, RpcError, RpcUnavailable
from node.testnet import AUTO_PORTS, Testnet, TestnetError, init_testnet

FAULTS = ("kill", "stop", "restart")
CHAIN_ID = "oml-chaos"
#: RPC timeout of a status/account/tx call: a frozen node must not hold a client long.
QUICK_S = 3.0
#: RPC timeout of broadcast_tx_commit (above the node's own commit wait).
COMMIT_S = 20.0
#: A flooder that saw no commit of its account this long resends from the committed nonce
#: (the node that held the rest may have been killed before gossiping them).
STUCK_S = 5.0
#: ``block`` calls per JSON-RPC batch when fetching the chains (server max_batch is 100).
FETCH_BATCH = 50


@dataclass
class ChaosOptions:
    """What a chaos run does. Times in seconds."""

    out: Path
    seconds: float = 300.0
    validators: int = 4
    committers: int = 8
    flooders: int = 2
    batch: int = 20
    window: int = 200
    fault_s: tuple[float, float] = (2.0, 6.0)  # how long a node stays faulty
    gap_s: tuple[float, float] = (1.0, 3.0)  # pause between a rejoin and the next fault
    liveness_limit_s: float = 10.0
    rejoin_limit_s: float = 30.0
    heal_deadline_s: float = 60.0  # how long recovery is watched before it counts as never
    start_timeout_s: float = 120.0
    seed: int | None = None
    cycle_faults: bool = False  # kill, stop, restart in turn (tests), not at random
    min_faults: int = 0  # go on past ``seconds`` until this many faults were healed
    consensus: dict[str, Any] | None = None  # None: the testnet defaults (node.testnet)


@dataclass
class ChaosResult:
    """What a run saw and what the checkers said of it."""

    faults: Counter[str]
    sent: int
    acked: list[Acked]
    heals: list[Heal]
    top: int
    checks: list[Check]
    rows: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def report(self) -> str:
        checks = [(f"check: {c.name}", ("PASS  " if c.ok else "FAIL  ") + c.detail)
                  for c in self.checks]
        return table(self.rows + checks)


class Cluster:
    """The testnet as the clients see it: which nodes they may use, and RPC to each.

    The fault loop marks the one faulty node; clients pick among the others.
    """

    def __init__(self, net: Testnet, names: list[str]) -> None:
        self.net = net
        self.names = names
        self.faulty: str | None = None
        self._lock = threading.Lock()

    def usable(self) -> list[str]:
        with self._lock:
            return [n for n in self.names if n != self.faulty]

    def set_faulty(self, name: str | None) -> None:
        with self._lock:
            self.faulty = name

    def url(self, name: str) -> str:
        return self.net.spec(name).rpc_url

    def height(self, name: str) -> int | None:
        try:
            with RpcClient(self.url(name), timeout=QUICK_S) as c:
                return c.height()
        except RpcClientError:
            return None

    def heights(self) -> dict[str, int | None]:
        return {n: self.height(n) for n in self.names}


class Clients:
    """Per-thread RPC clients keyed by URL (a restarted node has a new URL)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._by_url: dict[str, RpcClient] = {}

    def get(self, url: str) -> RpcClient:
        if url not in self._by_url:
            self._by_url[url] = RpcClient(url, timeout=self._timeout)
        return self._by_url[url]

    def close(self) -> None:
        for c in self._by_url.values():
            c.close()


class Load:
    """The client threads and what they sent and were told."""

    def __init__(self, cluster: Cluster, opts: ChaosOptions, seeds: list[bytes]) -> None:
        self.cluster = cluster
        self.opts = opts
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.acked: list[Acked] = []
        self.sent: set[str] = set()
        self.threads = [threading.Thread(target=self._committer, args=(s, i), daemon=True)
                        for i, s in enumerate(seeds[:opts.committers])]
        self.threads += [threading.Thread(target=self._flooder, args=(s, i), daemon=True)
                         for i, s in enumerate(seeds[opts.committers:])]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def halt(self, timeout: float = COMMIT_S + 10) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.monotonic()))

    def _ack(self, tx_hash: str, height: int, via: str, node: str) -> None:
        with self._lock:
            self.acked.append(Acked(tx_hash=tx_hash, height=height, via=via, node=node))

    def _sent(self, tx_hashes: list[str]) -> None:
        with self._lock:
            self.sent.update(tx_hashes)

    def _pick(self, rng: random.Random) -> str | None:
        usable = self.cluster.usable()
        return rng.choice(usable) if usable else None

    @staticmethod
    def _tx_height(client: RpcClient, tx_hash: str) -> int | None:
        try:
            return int(client.call("tx", {"hash": tx_hash})["height"])
        except RpcClientError:
            return None

    def _committer(self, seed: bytes, index: int) -> None:
        """One transfer at a time, each acknowledged before the next nonce."""
        rng = random.Random(index)
        signer = Signer(PrivateKey(seed))
        sink = sha256(signer.public_key + b"sink")[:20]
        clients = Clients(COMMIT_S)
        try:
            nonce = 0
            while not self.stop.is_set():
                tx = build_tx(signer, CHAIN_ID, nonce, TransferBody(to=sink, amount=1))
                tx_hash = sha256(tx).hex()
                self._sent([tx_hash])
                while not self.stop.is_set():
                    name = self._pick(rng)
                    if name is not None and self._commit_once(clients, name, tx, tx_hash):
                        nonce += 1
                        break
                    self.stop.wait(0.3)
        finally:
            clients.close()

    def _commit_once(self, clients: Clients, name: str, tx: bytes, tx_hash: str) -> bool:
        client = clients.get(self.cluster.url(name))
        try:
            res = client.call("broadcast_tx_commit", {"tx": tx.hex()})
            height = int(res["height"])
            if res["check_tx"]["code"] == 0 and height > 0:
                self._ack(tx_hash, height, "commit", name)
                return True
        except RpcError:
            pass  # the node's commit wait timed out: the tx may still be committed
        except RpcUnavailable:
            return False  # the node went away: try another
        # refused as a duplicate (pending or committed) or timed out: ask where it is
        height = self._tx_height(client, tx_hash)
        if height is not None:
            self._ack(tx_hash, height, "tx", name)
            return True
        return False

    def _flooder(self, seed: bytes, index: int) -> None:
        """Batches of broadcast_tx_sync with a window of uncommitted nonces."""
        rng = random.Random(1000 + index)
        signer = Signer(PrivateKey(seed))
        sink = sha256(signer.public_key + b"sink")[:20]
        address = signer.address.hex()
        clients = Clients(QUICK_S * 3)
        hashes: dict[int, bytes] = {}
        next_nonce = confirmed = 0
        progress_at = time.monotonic()
        try:
            while not self.stop.is_set():
                name = self._pick(rng)
                if name is None:
                    self.stop.wait(0.2)
                    continue
                client = clients.get(self.cluster.url(name))
                try:
                    now_confirmed = int(client.call("account", {"address": address})["nonce"])
                except RpcClientError:
                    self.stop.wait(0.2)
                    continue
                if now_confirmed > confirmed:
                    newest = sha256(hashes[now_confirmed - 1]).hex()
                    height = self._tx_height(client, newest)
                    if height is not None:
                        self._ack(newest, height, "tx", name)
                    confirmed, progress_at = now_confirmed, time.monotonic()
                if next_nonce - confirmed >= self.opts.window:
                    if time.monotonic() - progress_at < STUCK_S:
                        self.stop.wait(0.1)
                        continue
                    next_nonce, progress_at = confirmed, time.monotonic()  # resend the rest
                next_nonce = max(next_nonce, confirmed)
                for n in range(next_nonce, next_nonce + self.opts.batch):
                    if n not in hashes:
                        hashes[n] = build_tx(signer, CHAIN_ID, n,
                                             TransferBody(to=sink, amount=1))
                ok = self._send_batch(client, [hashes[n] for n in
                                               range(next_nonce, next_nonce + self.opts.batch)])
                next_nonce += ok
                if ok < self.opts.batch:
                    self.stop.wait(0.1)
        finally:
            clients.close()

    def _send_batch(self, client: RpcClient, txs: list[bytes]) -> int:
        """Send ``txs`` in one JSON-RPC batch; how many, from the first, the node holds."""
        body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                 "params": {"tx": tx.hex()}} for i, tx in enumerate(txs)]
        try:
            resp = client.post_raw(json.dumps(body).encode())
            answers = resp.json()
        except (RpcClientError, ValueError):
            return 0
        by_id = {a.get("id"): a for a in answers} if isinstance(answers, list) else {}
        ok = 0
        for i in range(len(txs)):
            result = by_id.get(i, {}).get("result") or {}
            if result.get("code") == 0 or (result.get("code") == CODE_DUPLICATE
                                          and result.get("codespace") == "mempool"):
                ok += 1
                continue
            break  # keep nonces gap-free: resend from here next time
        self._sent([sha256(tx).hex() for tx in txs[:ok]])
        return ok


class FaultLoop:
    """One fault at a time on a random validator, then the measured heal."""

    def __init__(self, net: Testnet, cluster: Cluster, opts: ChaosOptions,
                 rng: random.Random, log: Callable[[str], None]) -> None:
        self.net = net
        self.cluster = cluster
        self.opts = opts
        self.rng = rng
        self.log = log
        self.faults: Counter[str] = Counter()
        self.heals: list[Heal] = []
        self.exit_codes: Counter[str] = Counter()  # SIGTERM exit codes of restarts

    def run(self, until: float) -> None:
        """Inject faults until the monotonic time ``until``; stops early if the chain dies."""
        turn = itertools.count()
        while time.monotonic() < until or len(self.heals) < self.opts.min_faults:
            victim = self.rng.choice(self.cluster.names)
            fault = (FAULTS[next(turn) % len(FAULTS)] if self.opts.cycle_faults
                     else self.rng.choice(FAULTS))
            heal = self.one(victim, fault)
            self.heals.append(heal)
            self.log(f"{fault} {victim}: top {heal.top_at_heal}, recovery "
                     + _secs(heal.recovery_s) + ", rejoin " + _secs(heal.rejoin_s))
            if heal.recovery_s is None:
                self.log("the chain did not recover: no more faults")
                return
            self.rng_pause(self.opts.gap_s)

    def rng_pause(self, span: tuple[float, float]) -> None:
        time.sleep(self.rng.uniform(*span))

    def one(self, victim: str, fault: str) -> Heal:
        self.faults[fault] += 1
        self.cluster.set_faulty(victim)
        try:
            if fault == "stop":
                self.net.procs[victim].signal(signal.SIGSTOP)
                self.rng_pause(self.opts.fault_s)
                self.net.procs[victim].signal(signal.SIGCONT)
            else:
                if fault == "kill":
                    self.net.kill(victim)
                else:
                    self.exit_codes[str(self.net.stop(victim, grace=20))] += 1
                self.rng_pause(self.opts.fault_s)
                self.net.start(victim)
                self.net.wait_healthy([victim], timeout=self.opts.start_timeout_s)
        except TestnetError as exc:
            self.log(f"{fault} {victim}: could not bring it back: {exc}")
            return Heal(node=victim, fault=fault, top_at_heal=-1, recovery_s=None,
                        rejoin_s=None)
        finally:
            self.cluster.set_faulty(None)
        return self.watch(victim, fault)

    def watch(self, victim: str, fault: str) -> Heal:
        """From the heal on: until a majority, and the victim, pass the top seen at the heal."""
        t0 = time.monotonic()
        top = max((h for h in self.cluster.heights().values() if h is not None), default=0)
        majority = len(self.cluster.names) // 2 + 1
        recovery = rejoin = None
        while time.monotonic() - t0 < self.opts.heal_deadline_s:
            heights = self.cluster.heights()
            now = time.monotonic() - t0
            if recovery is None and sum(1 for h in heights.values()
                                        if h is not None and h > top) >= majority:
                recovery = now
            if rejoin is None and (heights[victim] or 0) > top:
                rejoin = now
            if recovery is not None and rejoin is not None:
                break
            time.sleep(0.1)
        return Heal(node=victim, fault=fault, top_at_heal=top, recovery_s=recovery,
                    rejoin_s=rejoin)


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def fetch_chain(url: str, top: int) -> dict[int, BlockRecord]:
    """Blocks 1..``top`` of one node, in JSON-RPC batches of ``block`` calls."""
    blocks: dict[int, BlockRecord] = {}
    with httpx.Client(timeout=60) as http:
        for lo in range(1, top + 1, FETCH_BATCH):
            heights = range(lo, min(top, lo + FETCH_BATCH - 1) + 1)
            body = [{"jsonrpc": "2.0", "id": h, "method": "block", "params": {"height": h}}
                    for h in heights]
            try:
                answers = http.post(url, json=body).json()
            except (httpx.HTTPError, ValueError):
                continue  # those heights stay missing: check_converged names them
            for a in answers if isinstance(answers, list) else []:
                b = a.get("result")
                if b is None:
                    continue
                blk = b["block"]
                blocks[int(blk["height"])] = BlockRecord(
                    height=int(blk["height"]), hash=b["block_id"]["hash"],
                    app_hash=blk["header"]["app_hash"], time_ms=int(blk["time_ms"]),
                    txs=frozenset(sha256(bytes.fromhex(t)).hex() for t in blk["data"]["txs"]))
    return blocks


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def longest_gap_s(blocks: dict[int, BlockRecord], since: int) -> float:
    """The longest time between consecutive block headers above height ``since``."""
    ordered = [blocks[h].time_ms for h in sorted(blocks) if h >= since]
    return max((b - a for a, b in itertools.pairwise(ordered)), default=0) / 1000


def _say(line: str) -> None:
    print(line, flush=True)


def run_chaos(opts: ChaosOptions, log: Callable[[str], None] = _say) -> ChaosResult:
    """Start a testnet under ``opts.out``, run load and faults, stop it, check the chains."""
    seed = opts.seed if opts.seed is not None else int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    seeds = [rng.randbytes(32) for _ in range(opts.committers + opts.flooders)]
    funded = tuple(PrivateKey(s).address.hex() for s in seeds)
    out = opts.out / "testnet"
    init_testnet(out, validators=opts.validators, base_port=AUTO_PORTS, chain_id=CHAIN_ID,
                 fund=funded, force=True, consensus=opts.consensus)
    names = [f"node{i}" for i in range(opts.validators)]
    load_before = os.getloadavg()
    log(f"chaos: {opts.validators} validators in {out}, seed {seed}, "
        f"{opts.seconds:.0f} s of faults")
    with Testnet(out) as net:
        try:
            net.start_all(names, timeout=opts.start_timeout_s)
            cluster = Cluster(net, names)
            if not wait_for(lambda: (cluster.height("node0") or 0) >= 1, 60):
                raise TestnetError("no first block within 60 s")
            start_height = max(h or 0 for h in cluster.heights().values())
            load = Load(cluster, opts, seeds)
            load.start()
            faults = FaultLoop(net, cluster, opts, rng, log)
            t_start = time.monotonic()
            try:
                faults.run(until=t_start + opts.seconds)
            finally:
                load.stop.set()  # on Ctrl-C too: no client outlives the run
            fault_wall = time.monotonic() - t_start
            _heal_all(net, names, opts.start_timeout_s)
            load.halt()
            top = max((h or 0 for h in cluster.heights().values()), default=0)
            wait_for(lambda: all((h or 0) >= top for h in cluster.heights().values()), 120)
            chains = {n: fetch_chain(cluster.url(n), top) for n in names}
        finally:
            for np in net.procs.values():  # a frozen node cannot act on SIGTERM
                np.signal(signal.SIGCONT)
    load_after = os.getloadavg()

    heals = faults.heals
    acked = load.acked
    checks = [
        check_no_fork(chains),
        check_app_hashes(chains),
        check_converged(chains, top),
        check_acked_txs(chains, acked),
        check_liveness(heals, opts.liveness_limit_s),
        check_rejoin(heals, opts.rejoin_limit_s),
    ]
    via = Counter(a.via for a in acked)
    rows = [
        ("validators / seed", f"{opts.validators} / {seed}"),
        ("faults for", f"{fault_wall:.0f} s"),
        ("load average (1 min) before / after",
         f"{load_before[0]:.1f} / {load_after[0]:.1f} ({os.cpu_count()} CPUs)"),
        ("faults: kills / stops / restarts",
         f"{faults.faults['kill']} / {faults.faults['stop']} / {faults.faults['restart']}"),
        ("SIGTERM exit codes (restarts)",
         ", ".join(f"{k}: {v}" for k, v in sorted(faults.exit_codes.items())) or "none"),
        ("txs sent / in the chain", f"{len(load.sent)} / "
         f"{len(load.sent & set().union(*(b.txs for b in chains[names[0]].values())))}"),
        ("txs acknowledged (commit / tx)",
         f"{len(acked)} ({via['commit']} / {via['tx']})"),
        ("lost acknowledged txs", f"{len(lost_acked(chains, acked))}"),
        ("height at load start / checked top", f"{start_height} / {top}"),
        ("longest block gap (header times)",
         f"{longest_gap_s(chains[names[0]], start_height):.1f} s"),
        ("heals", f"{len(heals)}"),
        ("recovery after heal max / p50", max_p50([h.recovery_s for h in heals])),
        ("rejoin after heal max / p50", max_p50([h.rejoin_s for h in heals])),
    ]
    return ChaosResult(faults=faults.faults, sent=len(load.sent), acked=acked, heals=heals,
                       top=top, checks=checks, rows=rows)


def _heal_all(net: Testnet, names: list[str], timeout: float) -> None:
    """Every validator running again (the run may have ended mid-fault)."""
    for n in names:
        net.procs[n].signal(signal.SIGCONT)
    dead = [n for n in names if not net.procs[n].alive]
    try:
        for n in dead:
            net.start(n)
        if dead:
            net.wait_healthy(dead, timeout=timeout)
    except TestnetError as exc:  # the checks will show what that node lacks
        print(f"chaos: could not restart {dead}: {exc}", file=sys.stderr)


def _raise_interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="how long faults are injected")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--committers", type=int, default=8,
                    help="broadcast_tx_commit clients, one account each")
    ap.add_argument("--flooders", type=int, default=2, help="broadcast_tx_sync batch clients")
    ap.add_argument("--batch", type=int, default=20, help="txs per flooder request")
    ap.add_argument("--liveness-s", type=float, default=10.0,
                    help="the chain must advance on a majority this soon after each heal")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", type=Path, help="put the testnet here (default: a temp dir)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    root = args.keep or Path(tempfile.mkdtemp(prefix="oml-chaos-"))
    opts = ChaosOptions(out=root, seconds=args.minutes * 60, validators=args.validators,
                        committers=args.committers, flooders=args.flooders, batch=args.batch,
                        liveness_limit_s=args.liveness_s, seed=args.seed)
    try:
        result = run_chaos(opts)
    except KeyboardInterrupt:
        print("interrupted: every node was stopped", file=sys.stderr)
        return 130
    print()
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
