"""Benchmark the consensus storage: WAL appends, block store, catch-up verification.

Run: ``python bench/consensus_storage.py``. Prints one table; figures depend
on the disk (fsync latency dominates the WAL) and the CPU (signature checks
dominate catch-up).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.blockstore import BlockStore
from consensus.catchup import CatchUp
from consensus.wal import FileWAL
from tests.consensus._persist_chain import Chain, make_signers


def bench_wal(root: Path) -> list[tuple[str, str]]:
    rows = []
    record = b"v" * 200
    with FileWAL(root / "wal", height_of=lambda r: 1) as wal:
        n = 200
        t = time.perf_counter()
        for _ in range(n):
            wal.append(record)
        rows.append(("WAL append (200 B, fdatasync each)",
                     f"{(time.perf_counter() - t) / n * 1e3:.2f} ms/record"))
        t = time.perf_counter()
        for _ in range(n):
            wal.append_many([record] * 10)
        rows.append(("WAL append_many (10 x 200 B, one fdatasync)",
                     f"{(time.perf_counter() - t) / n * 1e3:.2f} ms/batch"))
        t = time.perf_counter()
        count = sum(1 for _ in wal.records())
        dt = time.perf_counter() - t
        rows.append(("WAL read back", f"{count / dt / 1e3:.0f} k records/s"))
    t = time.perf_counter()
    FileWAL(root / "wal", height_of=lambda r: 1).close()
    rows.append(("WAL open + scan (CRC check) of those records",
                 f"{(time.perf_counter() - t) * 1e3:.1f} ms"))
    return rows


def bench_store_and_catchup(root: Path, n_validators: int, n_blocks: int,
                            txs: int, tx_size: int) -> list[tuple[str, str]]:
    valset, signers = make_signers(n_validators)
    chain = Chain(valset, signers).extend(n_blocks, txs_per_block=txs, tx_size=tx_size)
    pairs = chain.pairs(1, n_blocks)
    label = f"N={n_validators}, {txs} txs/block"
    rows = []
    with BlockStore.open(root / f"store-{n_validators}-{txs}") as store:
        t = time.perf_counter()
        for block, commit in zip(chain.blocks, chain.commits):
            store.save_block(block, commit)
        rows.append((f"block store save ({label})",
                     f"{(time.perf_counter() - t) / n_blocks * 1e3:.2f} ms/block"))
        t = time.perf_counter()
        for h in range(1, n_blocks + 1):
            store.load_block(h)
            store.load_commit(h)
        rows.append((f"block store load + decode + id check ({label})",
                     f"{(time.perf_counter() - t) / n_blocks * 1e3:.2f} ms/block"))
    cu = CatchUp(chain_id=chain.chain_id, valset=valset, height=0, last_block_id=b"")
    t = time.perf_counter()
    result = cu.on_blocks("peer", pairs)
    dt = time.perf_counter() - t
    assert len(result.ready) == n_blocks and not result.rejected
    rows.append((f"catch-up verify, all signatures ({label})",
                 f"{n_blocks / dt:.0f} blocks/s"))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = bench_wal(root)
        for n in (4, 10):
            rows += bench_store_and_catchup(root, n, 100, 0, 0)
        rows += bench_store_and_catchup(root, 4, 20, 1000, 200)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
