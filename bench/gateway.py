"""What the host gateway adds per query, and queries per second through it.

    python bench/gateway.py [--requests 200] [--seconds 8] [--concurrency 8]
                            [--max-tokens 1] [--model-dir DIR] [--window-ms 0]

Two server processes serve the same tiny model (built here unless
``--model-dir``) over the OpenAI API:

* ``bare``: the model served with no gateway layer (``oml-node host engine``:
  no keys, no permission) -- "calling the model directly", as a client of
  vLLM would;
* ``gateway``: the full gateway -- API key, rate limit and budget checks, the
  query hash, a permission bought through the real :class:`Permitter`
  (batching, host-signed cumulative voucher, grant checked against the
  owner's key, permission strings and voucher written to LMDB before the
  model runs, the answer held until their fsync returns: ``permit_sync_ms =
  0``, the default), usage counted.
  The owner is an in-process stand-in that signs real Ed25519 permission
  strings with no network hop (``bench/permission.py`` measures a real owner);
* ``gateway-sync100``: the same with ``permit_sync_ms = 100`` (answers do not
  wait for the fsync, which runs every 100 ms).

This process is only the client (httpx, keep-alive). Printed: p50/p99 latency
of sequential requests for each server, the gateway's added p50/p99, the
server process's CPU per query (user + system, from /proc: on a loaded
machine the steadier measure of what the gateway adds), and queries/s with
``--concurrency`` clients for ``--seconds``.

Both servers run torch with ``--threads`` intra-op threads (default 1): a
tiny model gains nothing from more, and idle OpenMP workers spinning after
each step compete with the server's event loop on a small machine, which
made every figure (both servers alike) swing by tens of milliseconds. ``max_tokens`` is
1 by default so the model's own time does not drown what the gateway adds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "sk-bench"
MODES = tuple(os.environ.get("GW_MODES", "bare,gateway,gateway-sync100").split(","))
NAME = "bench-model"


# ---------------------------------------------------------------------- server side


def serve(mode: str, model_dir: Path, db_dir: Path, window_ms: int) -> None:
    """Run one server (child process); print its base URL on stdout."""
    import functools

    import trio

    from consensus.crypto import PrivateKey, Signer
    from node.ledger.vouchers import PERMISSION_DOMAIN, permission_body
    from node.roles.host.apikeys import ApiKey, KeyRing, UsageBook
    from node.roles.host.app import Gateway, Limits
    from node.roles.host.durability import Flusher
    from node.roles.host.engine import TransformersEngine
    from node.roles.host.permits import Permitter
    from node.roles.host.store import HostStore
    from node.roles.owner.protocol import PermissionGrant
    from node.rpc.server import serve_app

    owner = Signer(PrivateKey(b"\x31" * 32))
    host = Signer(PrivateKey(b"\x32" * 32))

    class Model:
        price_per_query = 1
        owner_pubkey = owner.public_key

    class Ledger:
        def model(self, model_id: bytes) -> Any:
            return Model()

        def host(self, model_id: bytes, host: bytes) -> Any:
            return None

    class LocalOwner:
        """Signs like the owner's service, in-process (no libp2p hop)."""

        async def request(self, req: Any) -> Any:
            sigs = tuple(owner.sign(PERMISSION_DOMAIN, "bench",
                                    permission_body(req.model_id, req.host, s, q, 1))
                         for s, q in zip(req.seqs, req.query_hashes, strict=True))
            return PermissionGrant(issued_height=1, signatures=sigs)

    async def main() -> None:
        engine = await TransformersEngine.load(model_dir, device="auto",
                                               max_prompt_tokens=512)
        limits = Limits(max_new_tokens=64)
        async with trio.open_nursery() as nursery:
            if mode.startswith("gateway"):
                relaxed = mode == "gateway-sync100"
                store = HostStore.open(db_dir, sync=False)
                flusher = Flusher(store.flush, interval_s=0.1 if relaxed else 0.0)
                nursery.start_soon(flusher.run)
                permitter = Permitter(store=store, source=LocalOwner(), ledger=Ledger(),
                                      signer=host, chain_id="bench", model_id=NAME.encode(),
                                      window_s=window_ms / 1000, flusher=flusher,
                                      wait_durable=not relaxed)
                nursery.start_soon(permitter.run)
                keys = KeyRing([(API_KEY, ApiKey("bench", 0, 0))])
                gateway = Gateway(engine=engine, model_name=NAME, permits=permitter,
                                  keys=keys, usage=UsageBook(store), limits=limits)

                async def flush() -> None:
                    while True:
                        await trio.sleep(1)
                        gateway.usage.flush()

                nursery.start_soon(flush)
            else:
                gateway = Gateway(engine=engine, model_name=NAME, permits=None,
                                  keys=KeyRing([], require=False), usage=UsageBook(None),
                                  limits=limits)
            urls = await nursery.start(functools.partial(serve_app, gateway.app(),
                                                         "127.0.0.1:0"))
            print(urls[0] + "/v1", flush=True)

    trio.run(main)


# ---------------------------------------------------------------------- client side


def start(mode: str, model_dir: Path, db_dir: Path, window_ms: int, threads: int
          ) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--model-dir",
                             str(model_dir), "--db", str(db_dir), "--window-ms",
                             str(window_ms)], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http"):
        proc.kill()
        raise SystemExit(f"{mode} server did not start")
    return proc, line


def body(i: int, max_tokens: int) -> dict[str, Any]:
    return {"model": NAME, "prompt": f"query number {i} about the cat", "max_tokens": max_tokens,
            "temperature": 0}


async def sequential(url: str, n: int, max_tokens: int) -> list[float]:
    import httpx

    out = []
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {API_KEY}"},
                                 timeout=60) as client:
        for i in range(-5, n):  # five warm-up requests
            t = time.perf_counter()
            resp = await client.post(url + "/completions", json=body(i, max_tokens))
            dt = time.perf_counter() - t
            resp.raise_for_status()
            if i >= 0:
                out.append(dt)
    return out


async def throughput(url: str, seconds: float, concurrency: int, max_tokens: int
                     ) -> tuple[int, float]:
    import httpx
    import trio

    done = 0
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {API_KEY}"}, timeout=60,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        deadline = trio.current_time() + seconds
        start_t = time.perf_counter()

        async def worker(w: int) -> None:
            nonlocal done
            i = 0
            while trio.current_time() < deadline:
                resp = await client.post(url + "/completions",
                                         json=body(w * 1_000_000 + i, max_tokens))
                resp.raise_for_status()
                done += 1
                i += 1

        async with trio.open_nursery() as nursery:
            for w in range(concurrency):
                nursery.start_soon(worker, w)
        return done, time.perf_counter() - start_t


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=1)
    p.add_argument("--window-ms", type=int, default=0)
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per server (OMP_NUM_THREADS); see the docstring")
    p.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.model_dir, args.db, args.window_ms)
        return

    import trio

    tmp = Path(tempfile.mkdtemp(prefix="oml-bench-gateway-"))
    try:
        model_dir = args.model_dir
        if model_dir is None:
            from oml.testing import make_tiny_model_dir

            model_dir = make_tiny_model_dir(tmp / "model", pretrain_steps=0)
        results: dict[str, Any] = {}
        for mode in MODES:
            proc, url = start(mode, model_dir, tmp / f"db-{mode}", args.window_ms,
                              args.threads)
            try:
                cpu0 = cpu_seconds(proc.pid)
                lat = trio.run(sequential, url, args.requests, args.max_tokens)
                cpu = (cpu_seconds(proc.pid) - cpu0) / (args.requests + 5)
                n, secs = trio.run(throughput, url, args.seconds, args.concurrency,
                                   args.max_tokens)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            results[mode] = {"p50_ms": pct(lat, 0.5) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3,
                             "mean_ms": statistics.mean(lat) * 1e3, "qps": n / secs,
                             "cpu_ms": cpu * 1e3}
        bare = results["bare"]
        for mode in MODES[1:]:
            results[mode]["added_p50_ms"] = results[mode]["p50_ms"] - bare["p50_ms"]
            results[mode]["added_p99_ms"] = results[mode]["p99_ms"] - bare["p99_ms"]
            results[mode]["added_cpu_ms"] = results[mode]["cpu_ms"] - bare["cpu_ms"]
        print(f"gateway bench: {args.requests} sequential requests, max_tokens "
              f"{args.max_tokens}; throughput with {args.concurrency} clients for "
              f"{args.seconds:g}s; permission batch window {args.window_ms} ms; "
              f"{args.threads} torch thread(s) per server")
        print(f"{'server':<17}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'added p50':>11}"
              f"{'added p99':>11}{'CPU ms/q':>10}{'added CPU':>11}{'queries/s':>11}")
        for mode in MODES:
            r = results[mode]
            added = (f"{r['added_p50_ms']:>11.2f}{r['added_p99_ms']:>11.2f}"
                     if mode != "bare" else f"{'-':>11}{'-':>11}")
            added_cpu = f"{r['added_cpu_ms']:>11.2f}" if mode != "bare" else f"{'-':>11}"
            print(f"{mode:<17}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['mean_ms']:>9.2f}"
                  f"{added}{r['cpu_ms']:>10.2f}{added_cpu}{r['qps']:>11.1f}")
        if args.json:
            print(json.dumps(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
