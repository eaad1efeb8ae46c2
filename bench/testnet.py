"""Throughput and latency of a local multi-process testnet under signed transfers.

    python bench/testnet.py [--validators 4] [--seconds 30] [--clients 4] [--batch 100]

Starts a fresh local testnet (one OS process per validator, like ``oml-node
testnet start``), funds one account per client in genesis, and runs client
processes that sign transfers and send them to the nodes' JSON-RPC in
batches of ``broadcast_tx_sync`` calls (one HTTP request per batch), each
keeping at most ``--window`` transactions in flight (uncommitted) so the
mempools never fill. An observer polls node0 for new blocks and stamps the
wall-clock time each block became visible. Printed at the end:

- committed tx/s: transactions of the clients committed while they were
  sending, divided by the sending time (sustained rate);
- commit latency p50/p99: from a transaction's broadcast to its block
  becoming visible on node0 (RPC status/block polling every 50 ms);
- block interval: mean and p50 of the header time differences;
- CPU per node: process CPU time (user+system, /proc) divided by wall time,
  in percent of one core.

Before the load, the idle rows: with no client sending, CPU per node and
blocks per minute over ``--idle-seconds`` (0 skips them), after the
testnet has settled. The testnet has ``testnet init``'s consensus
defaults (an empty block per 10 s when idle) unless ``--interval-ms`` says
otherwise; ``--timeout-commit-ms`` sets the pause after each commit.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from consensus.crypto import PrivateKey, sha256
from node.rpc_client import RpcClient, RpcClientError
from node.testnet import AUTO_PORTS, TESTNET_CONSENSUS, Testnet, init_testnet

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def client(seed_hex: str, chain_id: str, url: str, seconds: float, batch: int, window: int,
           out_file: str, start_at: float) -> None:
    """Sign and send transfers until ``seconds`` pass; write (hash, sent_at) pairs."""
    import httpx

    from node.ledger import TransferBody, build_tx
    from node.mempool.pool import CODE_DUPLICATE as DUPLICATE

    key = PrivateKey(bytes.fromhex(seed_hex))
    to = sha256(key.public_key + b"sink")[:20]
    http = httpx.Client(timeout=30)
    rpc = RpcClient(url)
    sent: list[tuple[str, float]] = []
    reasons: dict[str, int] = {}
    nonce = 0
    confirmed = 0
    rejected = 0
    while time.time() < start_at:
        time.sleep(0.005)
    stop = start_at + seconds
    while time.time() < stop:
        while nonce - confirmed >= window and time.time() < stop:
            try:
                confirmed = int(rpc.call("account", {"address": key.address.hex()})["nonce"])
            except RpcClientError:
                pass
            if nonce - confirmed >= window:
                time.sleep(0.05)
        if time.time() >= stop:
            break
        txs = [build_tx(key, chain_id, nonce + i, TransferBody(to=to, amount=1))
               for i in range(batch)]
        body = [{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_sync",
                 "params": {"tx": tx.hex()}} for i, tx in enumerate(txs)]
        t = time.time()
        try:
            resp = http.post(url, json=body).json()
        except (httpx.HTTPError, ValueError):
            time.sleep(0.1)
            continue
        by_id = {r.get("id"): r for r in resp} if isinstance(resp, list) else {}
        ok = 0
        gap = False
        for i, tx in enumerate(txs):
            res = by_id.get(i, {}).get("result", {})
            if res.get("code") == 0:
                sent.append((sha256(tx).hex(), t))  # accepted, even behind a refusal
            elif not (res.get("codespace") == "mempool" and res.get("code") == DUPLICATE):
                rejected += 1
                why = res.get("log") or str(by_id.get(i, {}).get("error", {}).get("message"))
                reasons[why[:80]] = reasons.get(why[:80], 0) + 1
                gap = True
            if not gap:
                ok += 1
        # gap-free nonces: resend from the first refusal next time (what was accepted
        # behind it comes back as a duplicate, which counts as in)
        nonce += ok
        if ok < len(txs):
            time.sleep(0.05)
    Path(out_file).write_text(json.dumps({"sent": sent, "rejected": rejected,
                                          "reasons": reasons}))


class Observer(threading.Thread):
    """Polls one node for new blocks; records when each became visible and its txs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.rpc = RpcClient(url, timeout=30)
        self.blocks: dict[int, tuple[float, int, list[str]]] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        seen = self.rpc.height()
        while not self.stop_flag.is_set():
            try:
                top = self.rpc.height()
                now = time.time()
                for h in range(seen + 1, top + 1):
                    b = self.rpc.call("block", {"height": h})
                    txs = [sha256(bytes.fromhex(t)).hex() for t in b["block"]["data"]["txs"]]
                    self.blocks[h] = (now, int(b["block"]["time_ms"]), txs)
                seen = max(seen, top)
            except RpcClientError:
                pass
            time.sleep(0.05)


def measure_idle(net: Testnet, pids: dict[str, int], seconds: float,
                 settle: float = 10.0) -> tuple[float, dict[str, float]]:
    """Blocks per minute and CPU % of a core per node while nobody sends anything.

    Waits ``settle`` seconds first: connecting, the first blocks and the
    gossip mesh cost CPU that an idle node left running does not pay.
    """
    time.sleep(settle)
    with net.client("node0") as c:
        h0 = c.height()
    cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
    t0 = time.time()
    time.sleep(seconds)
    cpu1 = {n: cpu_seconds(pid) for n, pid in pids.items()}
    wall = time.time() - t0
    with net.client("node0") as c:
        h1 = c.height()
    return (h1 - h0) / wall * 60, {n: (cpu1[n] - cpu0[n]) / wall * 100 for n in pids}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=50,
                    help="txs per HTTP request (the RPC runs a batch concurrently, so its txs "
                    "reach the mempool out of order: keep it under max_future_txs_per_sender)")
    ap.add_argument("--window", type=int, default=1000, help="max uncommitted txs per client")
    ap.add_argument("--base-port", type=int, default=AUTO_PORTS,
                    help="node i uses base+10i.. (default 0: every node binds free ports)")
    ap.add_argument("--keep", type=Path, help="keep the testnet directory here")
    ap.add_argument("--idle-seconds", type=float, default=30,
                    help="measure the idle cost this long before the load (0: skip)")
    ap.add_argument("--interval-ms", type=int, default=None,
                    help="[consensus] create_empty_blocks_interval_ms (default: testnet's)")
    ap.add_argument("--timeout-commit-ms", type=int, default=None,
                    help="[consensus] timeout_commit_ms (default: the node's, 200)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="oml-bench-"))
    try:
        return run(args, root)
    finally:
        if not args.keep:  # each run's homes hold ~60 MB of LMDB files
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    """Write the testnet under ``root``, measure it, print the table."""
    out = root / "testnet"
    seeds = [os.urandom(32) for _ in range(args.clients)]
    funded = tuple(PrivateKey(s).address.hex() for s in seeds)
    consensus: dict[str, object] = dict(TESTNET_CONSENSUS)
    if args.interval_ms is not None:
        consensus["create_empty_blocks_interval_ms"] = args.interval_ms
    if args.timeout_commit_ms is not None:
        consensus["timeout_commit_ms"] = args.timeout_commit_ms
    init_testnet(out, validators=args.validators, base_port=args.base_port,
                 chain_id="oml-bench", fund=funded, force=True, consensus=consensus)
    print(f"testnet: {args.validators} validators in {out}", flush=True)
    with Testnet(out) as net:
        net.start_all(timeout=120)
        with net.client("node0") as c:
            t_end = time.time() + 60
            while c.height() < 2 and time.time() < t_end:
                time.sleep(0.2)
        specs = [net.spec(s.name) for s in net.specs]  # with the ports each node bound
        pids = {n: p.proc.pid for n, p in net.procs.items()}
        idle = measure_idle(net, pids, args.idle_seconds) if args.idle_seconds > 0 else None
        observer = Observer(specs[0].rpc_url)
        observer.start()
        cpu0 = {n: cpu_seconds(pid) for n, pid in pids.items()}
        start_at = time.time() + 1.5
        ctx = mp.get_context("spawn")
        procs = []
        for i, seed in enumerate(seeds):
            url = specs[i % len(specs)].rpc_url
            f = root / f"client{i}.json"
            p = ctx.Process(target=client, args=(seed.hex(), "oml-bench", url, args.seconds,
                                                  args.batch, args.window, str(f), start_at))
            p.start()
            procs.append((p, f))
        for p, _ in procs:
            p.join(args.seconds + 120)
        wall = time.time() - start_at
        cpu1 = {n: cpu_seconds(pid) for n, pid in pids.items()}
        # let the tail commit (for latency), then stop observing
        time.sleep(5)
        observer.stop_flag.set()
        observer.join(10)

    sent: dict[str, float] = {}
    rejected = 0
    reasons: dict[str, int] = {}
    for _, f in procs:
        data = json.loads(f.read_text())
        rejected += data["rejected"]
        for why, n in data["reasons"].items():
            reasons[why] = reasons.get(why, 0) + n
        for h, t in data["sent"]:
            sent.setdefault(h, t)
    commit_time: dict[str, float] = {}
    for seen_at, _t, txs in observer.blocks.values():
        for h in txs:
            commit_time.setdefault(h, seen_at)
    stop = start_at + args.seconds
    in_window = sum(1 for h, t in commit_time.items() if h in sent and t <= stop)
    latencies = [commit_time[h] - t for h, t in sent.items() if h in commit_time]
    heights = sorted(h for h, (seen_at, _t, _x) in observer.blocks.items()
                     if start_at <= seen_at <= stop)
    times = [observer.blocks[h][1] for h in heights]
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(times)]

    rows = [
        ("validators", f"{args.validators}"),
        ("clients x batch", f"{args.clients} x {args.batch}"),
        ("txs sent (accepted by mempool)", f"{len(sent)}"),
        ("txs committed (all)", f"{sum(1 for h in sent if h in commit_time)}"),
        ("client resends (mempool refusals)", f"{rejected}"),
        ("committed tx/s (sustained)", f"{in_window / args.seconds:.0f}"),
        ("commit latency p50", f"{pct(latencies, 0.5) * 1000:.0f} ms"),
        ("commit latency p99", f"{pct(latencies, 0.99) * 1000:.0f} ms"),
        ("blocks in window", f"{len(heights)}"),
        ("block interval mean / p50",
         f"{statistics.mean(intervals) * 1000:.0f} / {pct(intervals, 0.5) * 1000:.0f} ms"
         if intervals else "n/a"),
    ]
    for n in sorted(pids):
        rows.append((f"CPU {n}", f"{(cpu1[n] - cpu0[n]) / wall * 100:.0f} % of a core"))
    if idle is not None:
        blocks_per_min, idle_cpu = idle
        rows.append((f"idle ({args.idle_seconds:.0f} s): blocks per minute",
                     f"{blocks_per_min:.1f}"))
        for n in sorted(idle_cpu):
            rows.append((f"idle CPU {n}", f"{idle_cpu[n]:.1f} % of a core"))
    for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]:
        rows.append(("  refused", f"{n} x {why}"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
