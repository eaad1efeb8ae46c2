"""Blob transfer over /oml/blob/1: MB/s from one provider and from three, CPU and memory.

Every node is its own OS process on 127.0.0.1 (as in a testnet): three
provider processes each serve the same blob from their own BlobStore, and a
fresh fetcher process (with an empty BlobStore) fetches it, first from one
provider, then from all three in parallel. The fetcher reports wall time,
its CPU seconds (user + system, all threads) and its peak RSS; the
providers report their CPU when they exit.

    python bench/blob.py [--mb 100] [--repeat 2] [--durable] [--range-chunks 8]

``--durable`` makes the fetcher's store fsync every chunk (the production
default); without it the store skips fsyncs, which isolates the transfer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from net import NetConfig, open_transport  # noqa: E402
from node.roles.storage.store import BlobStore  # noqa: E402
from node.roles.storage.transfer import BlobServer, Fetcher, FetchProgress  # noqa: E402

MB = 1_000_000
QUOTA = 1 << 40


def seed(name: str) -> bytes:
    return hashlib.sha256(b"bench-blob:" + name.encode()).digest()


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ------------------------------------------------------------------ provider


async def provider(root: Path, name: str) -> None:
    store = BlobStore.open(root, quota_bytes=QUOTA, durable=False)
    config = NetConfig(seed=seed(name), stream_timeout_s=20.0)
    async with open_transport(config) as t:
        server = BlobServer(store)
        server.register(t)
        print(json.dumps({"peer_id": t.peer_id, "addr": t.listen_addrs[0]}), flush=True)
        cpu0 = cpu_seconds()
        stdin = trio.lowlevel.FdStream(0)
        while await stdin.receive_some(1024):
            pass
        print(
            json.dumps({"cpu_s": cpu_seconds() - cpu0, "bytes_served": server.bytes_served}),
            flush=True,
        )
    store.close()


# ------------------------------------------------------------------- fetcher


async def fetcher(root: Path, blob_hex: str, peers: list[str], args: argparse.Namespace) -> None:
    store = BlobStore.open(root, quota_bytes=QUOTA, durable=args.durable)
    config = NetConfig(seed=seed(f"fetcher-{root.name}"), stream_timeout_s=20.0)
    async with open_transport(config) as t:
        for addr in peers:
            await t.connect(addr)
        with trio.fail_after(10):
            while len(t.connected_peers()) < len(peers):
                await trio.sleep(0.01)
        rss0 = vm_kb("VmRSS")
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        progress = FetchProgress(blob_id=bytes.fromhex(blob_hex))
        f = Fetcher(t, store, range_chunks=args.range_chunks, max_providers=len(peers), timeout=20)
        manifest = await f.fetch(progress.blob_id, progress=progress)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        assert store.is_complete(manifest.blob_id)
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "cpu_s": cpu,
                    "bytes": manifest.size,
                    "rss0_kb": rss0,
                    "peak_kb": vm_kb("VmHWM"),
                    "chunks_from": sorted(progress.chunks_from.values(), reverse=True),
                }
            ),
            flush=True,
        )
    store.close()


# -------------------------------------------------------------- orchestrator


def spawn(*argv: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, __file__, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def make_blob(tmp: Path, mb: int) -> tuple[str, list[Path]]:
    """A random file stored once, then the store copied for the other providers."""
    src = tmp / "blob.bin"
    with open(src, "wb") as out:
        for _ in range(mb):
            out.write(os.urandom(MB))
    roots = [tmp / f"provider{i}" for i in range(3)]
    store = BlobStore.open(roots[0], quota_bytes=QUOTA, durable=False)
    manifest = store.put_file(src)
    store.close()
    for r in roots[1:]:
        shutil.copytree(roots[0], r)
    src.unlink()
    os.sync()  # else the kernel writes the 300 MB back during the first run
    return manifest.blob_id.hex(), roots


def run_fetch(tmp: Path, n: int, blob_hex: str, addrs: list[str], args: argparse.Namespace):
    root = tmp / f"fetch-{n}-{time.monotonic_ns()}"
    extra = ["--durable"] if args.durable else []
    proc = spawn(
        "--role", "fetch", "--root", str(root), "--blob", blob_hex,
        "--range-chunks", str(args.range_chunks), *extra, "--peers", *addrs[:n],
    )  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    if proc.returncode:
        raise SystemExit(f"fetcher failed ({proc.returncode})")
    shutil.rmtree(root)
    return json.loads(out.strip().splitlines()[-1])


def orchestrate(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-blob-"))
    providers: list[subprocess.Popen[str]] = []
    try:
        blob_hex, roots = make_blob(tmp, args.mb)
        for i, r in enumerate(roots):
            providers.append(spawn("--role", "provider", "--root", str(r), "--name", f"p{i}"))
        addrs = [json.loads(p.stdout.readline())["addr"] for p in providers]  # type: ignore[union-attr]
        rows = []
        for n in (1, 3):
            for _ in range(args.repeat):
                rows.append((n, run_fetch(tmp, n, blob_hex, addrs, args)))
        for p in providers:
            p.stdin.close()  # type: ignore[union-attr]
        provider_cpu = [json.loads(p.stdout.readline())["cpu_s"] for p in providers]  # type: ignore[union-attr]
        report(args, rows, provider_cpu)
    finally:
        for p in providers:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, rows: list[tuple[int, dict]], provider_cpu: list[float]):
    load = os.getloadavg()[0]
    print(
        f"\n{args.mb} MB blob, 1 MiB chunks, ranges of {args.range_chunks}, "
        f"fetcher store durable={args.durable}, load average {load:.1f}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| providers | MB/s | fetcher CPU per MB | fetcher peak RSS MB | RSS growth MB "
        "| chunks per provider |"
    )
    print("|---|---|---|---|---|---|")
    for n, r in rows:
        mb = r["bytes"] / MB
        print(
            f"| {n} | {mb / r['seconds']:.1f} | {r['cpu_s'] / mb * 1000:.1f} ms "
            f"| {r['peak_kb'] / 1024:.0f} | {(r['peak_kb'] - r['rss0_kb']) / 1024:.0f} "
            f"| {'/'.join(map(str, r['chunks_from']))} |"
        )
    total_mb = sum(r["bytes"] for _, r in rows) / MB
    print(f"\nprovider CPU, all runs: {sum(provider_cpu) / total_mb * 1000:.1f} ms per MB served")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--durable", action="store_true")
    ap.add_argument("--range-chunks", type=int, default=8)
    ap.add_argument("--role", choices=("provider", "fetch"), help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    ap.add_argument("--blob", help=argparse.SUPPRESS)
    ap.add_argument("--peers", nargs="*", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "provider":
        trio.run(provider, args.root, args.name)
    elif args.role == "fetch":
        trio.run(fetcher, args.root, args.blob, args.peers, args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
