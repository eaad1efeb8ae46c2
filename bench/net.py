"""Consensus-style messages between a few validators: gossipsub vs direct streams.

LIBP2P.md asks whether consensus messages between a handful of validators go
better over direct streams to each validator than through gossipsub. This
bench answers it on this machine: it starts N validator processes on
127.0.0.1 (full mesh, persistent peers), and in each mode every node emits
``rate`` messages per second of ``size`` bytes for ``seconds``; each message
must reach the other N-1 nodes. Modes:

* ``gossip``: ``Transport.publish`` on one topic (signed, validated, relayed);
* ``direct``: ``Transport.send`` to every other node over long-lived streams.

It prints, per mode: delivery ratio, one-way latency p50/p95/p99/max
(sender clock to receiver clock; one host, so one clock), and CPU milliseconds
per received message per node (sending and relaying included).

    python bench/net.py [--nodes 4] [--rate 10] [--seconds 4] [--size 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from net import NetConfig, open_transport

TOPIC = "bench/votes/1"
PROTOCOL = "/bench/vote/1"
HEAD = struct.Struct(">BHId")  # mode, sender index, sequence number, send time
MODES = {"gossip": 1, "direct": 2}


def node_seed(i: int) -> bytes:
    return hashlib.sha256(b"bench-net-%d" % i).digest()


# ------------------------------------------------------------------ child


async def child(index: int, n: int, rate: float, seconds: float, size: int) -> None:
    """One node: listen on port 0, print ``ADDR <multiaddr>``, read the others' addresses
    from stdin (one line), connect, print ``READY``, then run the modes asked on stdin."""
    config = NetConfig(
        seed=node_seed(index),
        listen_addr="/ip4/127.0.0.1/tcp/0",
        redial_interval_s=0.3,
        publish_rate=max(200.0, rate * 2),
    )
    received: dict[tuple[int, int], float] = {}
    current = [0]

    def record(data: bytes) -> None:
        mode, sender, seq, sent = HEAD.unpack_from(data)
        if mode == current[0]:  # stragglers of the previous mode do not count
            received.setdefault((sender, seq), time.time() - sent)

    async with open_transport(config) as t:
        inbox = t.subscribe(TOPIC, buffer=4096)

        async def on_direct(peer: str, data: bytes) -> bytes:
            record(data)
            return b""

        t.set_handler(PROTOCOL, on_direct)
        print("ADDR", t.listen_addrs[0], flush=True)
        stdin = trio.lowlevel.FdStream(0)
        buf = b""
        while b"\n" not in buf:
            chunk = await stdin.receive_some(4096)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        peers = [a for a in line.decode().split() if not a.endswith(t.peer_id)]
        await t.add_peers(peers, persistent=True)
        others = [p.rsplit("/", 1)[1] for p in peers]
        with trio.fail_after(60):
            while len(t.connected_peers()) < n - 1 or len(t.topic_peers(TOPIC)) < n - 1:
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:

            async def drain() -> None:
                async for _origin, data in inbox:
                    record(data)

            nursery.start_soon(drain)
            print("READY", flush=True)
            while True:
                chunk = await stdin.receive_some(1024)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    mode, start = line.decode().split()
                    received.clear()
                    current[0] = MODES[mode]
                    cpu0 = time.process_time()
                    await emit(t, index, mode, float(start), rate, seconds, size, others)
                    await trio.sleep(1.5)  # let the last messages land
                    cpu = time.process_time() - cpu0
                    out = {"received": list(received.values()), "cpu": cpu}
                    print(json.dumps(out), flush=True)
            nursery.cancel_scope.cancel()


async def emit(t, index, mode, start, rate, seconds, size, others) -> None:  # type: ignore[no-untyped-def]
    count = int(rate * seconds)
    pad = b"\0" * max(0, size - HEAD.size)
    async with trio.open_nursery() as nursery:
        for seq in range(count):
            delay = start + seq / rate - time.time()
            if delay > 0:
                await trio.sleep(delay)
            data = HEAD.pack(MODES[mode], index, seq, time.time()) + pad
            if mode == "gossip":
                await t.publish(TOPIC, data)
            else:
                for peer in others:
                    nursery.start_soon(t.send, peer, PROTOCOL, data)


# ----------------------------------------------------------------- parent


def pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--rate", type=float, default=10.0, help="messages per second per node")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--modes", default="gossip,direct")
    ap.add_argument("--child", type=int, default=-1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child >= 0:
        trio.run(child, args.child, args.nodes, args.rate, args.seconds, args.size)
        return

    n = args.nodes
    expected = int(args.rate * args.seconds) * n * (n - 1)
    # Fresh processes per mode: a backlog left by one mode must not load the next.
    rows = [run_mode(mode, args) for mode in args.modes.split(",")]
    print(
        f"\n{n} nodes, {args.rate:g} msg/s per node for {args.seconds:g} s, "
        f"{args.size} B messages ({expected} deliveries expected per mode)\n"
    )
    print(
        f"{'mode':<8} {'delivered':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'CPU ms/msg recv':>16}"
    )
    for mode, got, lat, cpu in rows:
        print(
            f"{mode:<8} {got / expected:>9.1%} {pct(lat, 50):>8.1f} {pct(lat, 95):>8.1f} "
            f"{pct(lat, 99):>8.1f} {(lat[-1] if lat else float('nan')):>8.1f} "
            f"{cpu * 1000 / max(got / n, 1):>16.2f}"
        )


def run_mode(mode: str, args: argparse.Namespace) -> tuple[str, int, list[float], float]:
    """Start the nodes, run one mode, stop them; (mode, deliveries, latencies ms, CPU s/node)."""
    n = args.nodes
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    common = ["--nodes", str(n), "--rate", str(args.rate)]
    common += ["--seconds", str(args.seconds), "--size", str(args.size)]
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", str(i), *common],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(n)
    ]
    try:
        # Each node binds port 0 and reports its address; then every node gets the list.
        addrs = []
        for p in procs:
            assert p.stdout is not None
            kind, addr = p.stdout.readline().split()
            assert kind == "ADDR", kind
            addrs.append(addr)
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(" ".join(addrs) + "\n")
            p.stdin.flush()
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "READY"
        start = time.time() + 0.5
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{mode} {start}\n")
            p.stdin.flush()
        results = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
        lat = sorted(r * 1000 for res in results for r in res["received"])
        return mode, len(lat), lat, statistics.mean(res["cpu"] for res in results)
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
