"""Ledger throughput: apply N signed transfers in blocks of B transactions.

Usage: python bench/ledger.py [--txs N] [--block B] [--senders S] [--threads T]

Signing happens before timing. Each row applies the same transactions to a
fresh LMDB store (fsync per block included) and reports applied tx/s:

* ``verify, T threads``: the production path: per block, decode every
  transaction, then Ed25519-verify all signatures in one phase on a
  T-thread pool, then apply them sequentially (the phases do not overlap;
  small blocks verify on the calling thread). In the daemon, transactions
  this node admitted to its mempool skip the verify (a cache of hashes
  already checked); here none went through a mempool, so every signature
  is checked;
* ``verify, 1 thread``: everything on the calling thread;
* ``no verify``: decode and apply only (``verify_signatures=False``).

``cpu s`` is process CPU time over all threads: on a shared machine the wall
figures depend on the load, the CPU cost per transaction does not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# `python bench/ledger.py` puts bench/ first on sys.path, where sibling
# benchmarks (bench/consensus.py) would shadow the packages of the same name;
# the repository root goes there instead (also for a checkout without
# `make install`).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from consensus.crypto import PrivateKey, Signer
from node.genesis import Genesis, GenesisValidator
from node.ledger import Code, Ledger, TransferBody, build_tx

CHAIN = "bench-chain"


def make_txs(n: int, senders: int) -> tuple[Genesis, list[bytes], bytes]:
    keys = [Signer(PrivateKey(i.to_bytes(4, "big") * 8)) for i in range(1, senders + 1)]
    genesis = Genesis(chain_id=CHAIN, genesis_time_ms=0,
                      validators=(GenesisValidator("v", keys[0].public_key, 1),),
                      app_state={"accounts": [{"address": k.address.hex(), "balance": 10**12}
                                              for k in keys], "params": {}})
    nonces = [0] * senders
    txs = []
    for i in range(n):
        s = i % senders
        to = keys[(i * 7 + 1) % senders].address
        txs.append(build_tx(keys[s], CHAIN, nonces[s], TransferBody(to=to, amount=1 + i % 5)))
        nonces[s] += 1
    return genesis, txs, keys[0].address


def run(genesis: Genesis, txs: list[bytes], block: int, proposer: bytes, *, verify: bool,
        threads: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        ledger = Ledger.open(Path(d), genesis, verify_signatures=verify, verify_threads=threads)
        try:
            start, cpu_start = time.perf_counter(), time.process_time()
            for h, i in enumerate(range(0, len(txs), block), start=1):
                result = ledger.apply_block(h, h * 1000, proposer, txs[i:i + block])
                bad = [r for r in result.tx_results if r.code != Code.OK]
                if bad:
                    raise SystemExit(f"block {h}: {len(bad)} failed, first: {bad[0].log}")
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        finally:
            ledger.close()
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--txs", type=int, default=20_000, help="transfers to apply (default 20000)")
    ap.add_argument("--block", type=int, default=1_000, help="txs per block (default 1000)")
    ap.add_argument("--senders", type=int, default=1_000, help="distinct sender accounts")
    ap.add_argument("--threads", type=int, default=2, help="verification threads (default 2)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    genesis, txs, proposer = make_txs(args.txs, args.senders)
    print(f"signed {len(txs)} transfers in {time.perf_counter() - t0:.2f} s "
          f"({args.senders} senders, blocks of {args.block})")
    rows = [(f"verify, {args.threads} threads", True, args.threads),
            ("verify, 1 thread", True, 1),
            ("no verify", False, 1)]
    print(f"{'mode':<22} {'txs':>8} {'block':>6} {'seconds':>8} {'tx/s':>9} "
          f"{'cpu s':>7} {'cpu us/tx':>9}")
    for name, verify, threads in rows:
        secs, cpu = run(genesis, txs, args.block, proposer, verify=verify, threads=threads)
        print(f"{name:<22} {len(txs):>8} {args.block:>6} {secs:>8.2f} {len(txs) / secs:>9.0f} "
              f"{cpu:>7.2f} {cpu * 1e6 / len(txs):>9.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs; 'cpu' counts every thread)")


if __name__ == "__main__":
    main()
