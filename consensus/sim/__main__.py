"""``python -m consensus.sim --validators N --byzantine F --heights H --seeds S [--seed-start K]``

Runs S seeded simulations and prints each failure (with the command that
replays it) and a summary whose last line is
``seeds=S safety_violations=V liveness_failures=L``. Exit code 0 only if
V and L are both zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from .byzantine import STRATEGIES
from .runner import SimConfig, run_simulation
from .world import NetworkConditions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m consensus.sim",
                                 description="Seeded fault simulation of the consensus core.")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--byzantine", type=int, default=1)
    ap.add_argument("--heights", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--strategy", choices=STRATEGIES, default="mixed",
                    help="Byzantine behaviour (mixed: a random one per faulty node)")
    ap.add_argument("--crashes", type=int, default=1, help="crash/restart episodes before GST")
    ap.add_argument("--gst-ms", type=int, default=NetworkConditions().gst_ms)
    ap.add_argument("--loss", type=float, default=NetworkConditions().loss)
    ap.add_argument("--no-partitions", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per seed")
    args = ap.parse_args(argv)
    if not 0 <= args.byzantine < args.validators or args.heights < 1 or args.seeds < 0:
        ap.error("need 0 <= byzantine < validators, heights >= 1, seeds >= 0")
    net = replace(NetworkConditions(), gst_ms=args.gst_ms, loss=args.loss,
                  partitions=not args.no_partitions)
    config = SimConfig(validators=args.validators, byzantine=args.byzantine,
                       heights=args.heights, strategy=args.strategy, network=net,
                       crashes=args.crashes)
    safety = liveness = 0
    started = time.process_time()
    for seed in range(args.seed_start, args.seed_start + args.seeds):
        r = run_simulation(config, seed)
        if args.verbose:
            print(f"seed={seed} ok={r.ok} heights={r.heights} messages={r.messages} "
                  f"virtual_ms={r.virtual_ms} digest={r.digest[:16]}")
        if r.safety_violations:
            safety += 1
            print(f"SAFETY seed={seed}: " + " | ".join(r.safety_violations[:3]))
        if r.liveness_failure:
            liveness += 1
            print(f"LIVENESS seed={seed}: {r.liveness_failure}")
        if not r.ok:
            print(f"  replay: python -m consensus.sim --validators {args.validators} "
                  f"--byzantine {args.byzantine} --heights {args.heights} --seeds 1 "
                  f"--seed-start {seed} --strategy {args.strategy} --crashes {args.crashes} "
                  f"--gst-ms {args.gst_ms} --loss {args.loss}"
                  f"{' --no-partitions' if args.no_partitions else ''} -v")
    cpu = time.process_time() - started
    print(f"validators={args.validators} byzantine={args.byzantine} heights={args.heights} "
          f"strategy={args.strategy} cpu_s={cpu:.1f}")
    print(f"seeds={args.seeds} safety_violations={safety} liveness_failures={liveness}")
    return 0 if safety == 0 and liveness == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
