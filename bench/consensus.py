"""Consensus benchmark: the real core in the simulator with zero network delay.

For N = 4, 7, 10 validators (no faults, every message delivered at once):
heights per second of CPU time and messages per height; then, with 1,000
transactions of 200 bytes per block, the CPU cost per block. CPU time is the
whole simulated cluster's (all N validators run in this one process), so the
cost for one validator is roughly the cluster figure divided by N.

Run: ``python bench/consensus.py [--heights H] [--tx-heights T]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.sim import NetworkConditions, SimConfig, Simulation

ZERO_DELAY = NetworkConditions(gst_ms=0, min_delay_ms=0, max_delay_ms=0, delta_ms=0, loss=0.0,
                               duplication=0.0, partitions=False)


def measure(n: int, heights: int, txs: int, tx_size: int) -> dict[str, float]:
    config = SimConfig(validators=n, byzantine=0, heights=heights, network=ZERO_DELAY, crashes=0,
                       txs_per_block=txs, tx_size=tx_size, max_events=10_000_000)
    sim = Simulation(config, seed=1)
    started = time.process_time()
    result = sim.run()
    cpu = time.process_time() - started
    if not result.ok:
        raise SystemExit(f"benchmark run failed: {result.safety_violations} "
                         f"{result.liveness_failure}")
    done = min(result.heights.values())
    return {"n": n, "heights": done, "cpu_s": cpu, "heights_per_cpu_s": done / cpu,
            "messages_per_height": result.messages / done, "cpu_ms_per_block": 1000 * cpu / done}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heights", type=int, default=200)
    ap.add_argument("--tx-heights", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4, 7, 10])
    args = ap.parse_args(argv)
    print(f"{'N':>3} {'heights':>8} {'heights/CPU-s':>14} {'msgs/height':>12} "
          f"{'CPU ms/block (1000x200B txs)':>29} {'per node':>9}")
    for n in args.sizes:
        empty = measure(n, args.heights, txs=2, tx_size=16)
        full = measure(n, args.tx_heights, txs=1000, tx_size=200)
        print(f"{n:>3} {empty['heights']:>8} {empty['heights_per_cpu_s']:>14.1f} "
              f"{empty['messages_per_height']:>12.1f} {full['cpu_ms_per_block']:>29.1f} "
              f"{full['cpu_ms_per_block'] / n:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
