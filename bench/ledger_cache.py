"""apply_block after the daemon's mempool path: does the verified-signature cache work?

Usage: python bench/ledger_cache.py [--txs N] [--block B] [--junk J] [--cache C]

Transactions go through the daemon's own check path,
``Mempool(config.mempool, CachedCheck(ledger))`` (as ``node/daemon.py`` wires
it), then are applied in blocks of B, each block followed by
``Mempool.update`` (the recheck). Rows, each on a fresh store (fsync per
block, verification on the calling thread):

* ``cold``: nothing went through the mempool (block sync, replay): every
  signature is verified inside ``apply_block``;
* ``via mempool``: every transaction was admitted first, so ``apply_block``
  should verify none;
* ``via mempool + junk``: after admission, J validly signed transactions from
  keys without an account are offered to the mempool (refused with
  ``UNKNOWN_SENDER``) with the cache bounded to C entries (default N, just
  enough for the admitted ones). Only admitted transactions are cached, so
  the junk cannot evict them.

``verified in blocks`` counts signatures checked inside ``apply_block``;
``apply cpu us/tx`` is the CPU time of ``apply_block`` + recheck per tx.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from consensus.crypto import PrivateKey, Signer
from node.config import MempoolSection
from node.genesis import Genesis
from node.ledger import Code, Ledger, TransferBody, build_tx
from node.ledger import ledger as ledger_module
from node.mempool import Mempool
from node.txcheck import CachedCheck

_spec = importlib.util.spec_from_file_location("bench_ledger", _HERE / "ledger.py")
assert _spec is not None and _spec.loader is not None
_bench_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_ledger)
CHAIN, make_txs = _bench_ledger.CHAIN, _bench_ledger.make_txs  # bench/ledger.py


def run(genesis: Genesis, txs: list[bytes], junk: list[bytes], block: int, proposer: bytes,
        *, via_mempool: bool, cache: int) -> tuple[int, float, float, float]:
    verified = [0]
    real = ledger_module.verify_all

    def counting(batch, pool, chunk=64):  # type: ignore[no-untyped-def]
        verified[0] += len(batch)
        return real(batch, pool, chunk)

    ledger_module.verify_all = counting
    try:
        with tempfile.TemporaryDirectory() as d, \
                Ledger.open(Path(d), genesis, verify_threads=1, verified_cache=cache) as ledger:
            pool_cfg = MempoolSection(max_txs=len(txs) + len(junk) + 1, max_bytes=1 << 30)
            mempool = Mempool(pool_cfg, CachedCheck(ledger))
            c0 = time.process_time()
            if via_mempool:
                for tx in txs:
                    if not mempool.add(tx).accepted:
                        raise SystemExit("a benchmark transaction was refused")
                for tx in junk:
                    if mempool.add(tx).code != Code.UNKNOWN_SENDER:
                        raise SystemExit("junk was not refused")
            check_cpu = time.process_time() - c0
            start, c1 = time.perf_counter(), time.process_time()
            for h, i in enumerate(range(0, len(txs), block), start=1):
                part = txs[i:i + block]
                result = ledger.apply_block(h, h * 1000, proposer, part)
                if any(r.code != Code.OK for r in result.tx_results):
                    raise SystemExit(f"block {h} has failed transactions")
                mempool.update(h, part)
            wall = time.perf_counter() - start
            apply_cpu = time.process_time() - c1
    finally:
        ledger_module.verify_all = real
    return verified[0], check_cpu, apply_cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=10_000)
    ap.add_argument("--block", type=int, default=1_000)
    ap.add_argument("--senders", type=int, default=500)
    ap.add_argument("--junk", type=int, default=5_000)
    ap.add_argument("--cache", type=int, default=None,
                    help="verified_cache for the junk row (default: --txs, just enough)")
    args = ap.parse_args()
    genesis, txs, proposer = make_txs(args.txs, args.senders)
    strangers = [Signer(PrivateKey(b"\x5a" * 28 + i.to_bytes(4, "big")))
                 for i in range(args.junk)]
    junk = [build_tx(s, CHAIN, 0, TransferBody(to=proposer, amount=1)) for s in strangers]
    n = len(txs)
    print(f"{'mode':<22} {'txs':>7} {'verified in blocks':>19} {'check cpu s':>12} "
          f"{'apply cpu us/tx':>16} {'apply tx/s':>11}")
    rows = [("cold", False, [], 100_000), ("via mempool", True, [], 100_000),
            ("via mempool + junk", True, junk, n if args.cache is None else args.cache)]
    for name, via, j, cache in rows:
        verified, check_cpu, apply_cpu, wall = run(genesis, txs, j, args.block, proposer,
                                                   via_mempool=via, cache=cache)
        print(f"{name:<22} {n:>7} {verified:>19} {check_cpu:>12.2f} "
              f"{apply_cpu * 1e6 / n:>16.1f} {n / wall:>11.0f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
