"""Permission strings per second from one owner node, and the round trip of a batch.

    python bench/permission.py [--seconds 10] [--hosts 4] [--batches 16,64,128,256]

Starts one validator node process (a fresh single-node testnet) whose
account owns a model and whose ``[roles.owner]`` is on (rate limit raised
out of the way, redeem threshold out of reach). Genesis funds one account
per host and an OMLizer; the bench registers the model, takes every host to
ACTIVE and funds its channel, all through JSON-RPC transactions. Then this
process plays the hosts: one libp2p transport each, connected to the owner,
each keeping one ``/oml/permission/1`` request of ``batch`` query hashes in
flight (the gateway's way: concurrent queries gathered into one request).

``--direct`` measures the owner alone instead: the same service in this
process (a real chain fed by a test block producer, durable LMDB), its
handler called by four concurrent tasks with no network in between; that
separates the owner's own cost from py-libp2p's round trip.

Printed per batch size: permissions granted per second (all hosts together,
over the measured window), p50/p99 round trip of one request (send to
decoded grant), and the owner process's CPU in percent of one core. A sample
of grants is checked with ``verify_permission`` after the run (checking all
in the loop would measure the host's CPU, not the owner's).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consensus.crypto import PrivateKey  # noqa: E402
from net import NetConfig, open_transport  # noqa: E402
from node.config import render_config, with_changes  # noqa: E402
from node.home import Home  # noqa: E402
from node.ledger import build_tx  # noqa: E402
from node.ledger.txs import (  # noqa: E402
    CommitOmlizationBody,
    FundChannelBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
)
from node.ledger.vouchers import sign_voucher, verify_permission  # noqa: E402
from node.roles.owner.protocol import (  # noqa: E402
    PROTOCOL,
    PermissionRequest,
    decode_grant,
    encode_request,
)
from node.testnet import AUTO_PORTS, Testnet, init_testnet  # noqa: E402

CHAIN = "oml-bench-permission"
MODEL = b"bench-model"
PRICE = 1
ESCROW = 10**14
CLK_TCK = os.sysconf("SC_CLK_TCK")


def key(name: str) -> PrivateKey:
    return PrivateKey(hashlib.sha256(b"bench-permission:" + name.encode()).digest())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ setup


def start_owner(root: Path, hosts: list[PrivateKey], omlizer: PrivateKey) -> Testnet:
    out = root / "testnet"
    init_testnet(out, validators=1, base_port=AUTO_PORTS, chain_id=CHAIN,
                 fund=tuple(k.address.hex() for k in (*hosts, omlizer)))
    home = Home(out / "node0")
    config = with_changes(home.config(), roles={"owner": {
        "enabled": True, "redeem_threshold": 10**18, "rate_per_s": 1_000_000,
        "rate_burst": 1_000_000}}, log={"level": "warning"})
    home.config_file.write_text(render_config(config), "utf-8")
    net = Testnet(out)
    net.start_all(["node0"], timeout=120)
    return net


def send_all(net: Testnet, txs: list[tuple[PrivateKey, Any]]) -> None:
    """Commit ``txs`` (one per sender at a time, in order) and check every result."""
    with net.client("node0") as c:
        for signer, body in txs:
            nonce = c.call("account", {"address": signer.address.hex()})["nonce"]
            res = c.call("broadcast_tx_commit", {"tx": build_tx(signer, CHAIN, nonce,
                                                                body).hex()})
            if res["check_tx"]["code"] or (res["tx_result"] or {}).get("code"):
                raise SystemExit(f"setup tx {type(body).__name__} failed: {res}")


def setup_chain(net: Testnet, owner: PrivateKey, hosts: list[PrivateKey],
                omlizer: PrivateKey) -> None:
    txs: list[tuple[PrivateKey, Any]] = [
        (owner, RegisterModelBody(model_id=MODEL, weights_hash=b"\x11" * 32,
                                  price_per_query=PRICE, omlizers=(omlizer.address,))),
        (omlizer, RegisterRoleBody(role=int(Role.OMLIZER), bond=10_000))]
    for h in hosts:
        txs += [(h, RequestAccessBody(model_id=MODEL, collateral=1_000)),
                (omlizer, CommitOmlizationBody(
                    model_id=MODEL, host=h.address, package_hash=b"\x22" * 32,
                    fp_root=b"\x33" * 32, fp_count=4, package_blob=b"\x44" * 32)),
                (h, FundChannelBody(model_id=MODEL, amount=ESCROW))]
    send_all(net, txs)


# ------------------------------------------------------------------ hosts


class HostLoop:
    """One host: a running seq counter; one request in flight at a time."""

    def __init__(self, index: int, hkey: PrivateKey, transport: Any, owner_peer: str) -> None:
        self.index = index
        self.key = hkey
        self.transport = transport
        self.owner_peer = owner_peer
        self.count = 0
        self.rtts: list[float] = []
        self.granted = 0
        self.sample: tuple[PermissionRequest, Any] | None = None

    def request(self, n: int) -> bytes:
        first = self.count
        total, amount = first + n, (first + n) * PRICE
        hashes = tuple(hashlib.sha256(b"%d:%d" % (self.index, first + i)).digest()
                       for i in range(n))
        req = PermissionRequest(
            model_id=MODEL, host=self.key.address, first_seq=first, query_hashes=hashes,
            cumulative_count=total, cumulative_amount=amount,
            voucher_signature=sign_voucher(self.key, CHAIN, MODEL, total, amount))
        self._last = req
        return encode_request(req)

    async def run(self, n: int, start: float, stop: float) -> None:
        while True:
            data = self.request(n)
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            raw = await self.transport.request(self.owner_peer, PROTOCOL, data, timeout=30)
            t1 = time.perf_counter()
            grant = decode_grant(raw, n)
            self.count += n
            if t0 >= start:
                self.rtts.append(t1 - t0)
                self.granted += n
            self.sample = (self._last, grant)


async def measure(transports: list[Any], host_keys: list[PrivateKey], owner_peer: str,
                  counts: list[int], batch: int, seconds: float, warmup: float,
                  owner_pid: int, owner_pub: bytes) -> dict[str, float]:
    loops = [HostLoop(i, k, t, owner_peer) for i, (k, t) in enumerate(zip(host_keys,
                                                                          transports))]
    for loop, c in zip(loops, counts):
        loop.count = c
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + seconds
    cpu_at_start = None
    async with trio.open_nursery() as nursery:
        for loop in loops:
            nursery.start_soon(loop.run, batch, start, stop)
        await trio.sleep(max(0.0, start - time.perf_counter()))
        cpu_at_start = cpu_seconds(owner_pid)
        hosts_at_start = cpu_seconds(os.getpid())
        await trio.sleep(max(0.0, stop - time.perf_counter()))
        cpu_at_stop = cpu_seconds(owner_pid)
        hosts_at_stop = cpu_seconds(os.getpid())
    for i, loop in enumerate(loops):
        counts[i] = loop.count
        if loop.sample is not None:
            req, grant = loop.sample
            for seq, h, sig in list(zip(req.seqs, req.query_hashes, grant.signatures))[:8]:
                assert verify_permission(owner_pub, CHAIN, MODEL, req.host, seq, h, sig,
                                         issued_height=grant.issued_height), "bad permission"
    rtts = [r for loop in loops for r in loop.rtts]
    granted = sum(loop.granted for loop in loops)
    return {"batch": batch, "perm_s": granted / seconds, "req_s": len(rtts) / seconds,
            "p50_ms": statistics.median(rtts) * 1000, "p99_ms": percentile(rtts, 0.99) * 1000,
            "owner_cpu_pct": (cpu_at_stop - cpu_at_start) / seconds * 100,
            "hosts_cpu_pct": (hosts_at_stop - hosts_at_start) / seconds * 100,
            "load": os.getloadavg()[0]}


async def bench(net: Testnet, host_keys: list[PrivateKey], batches: list[int],
                seconds: float, warmup: float, owner_pub: bytes) -> list[dict[str, float]]:
    owner_addr = net.spec("node0").p2p_addr
    owner_pid = net.procs["node0"].proc.pid
    results = []
    async with trio.open_nursery() as nursery:
        transports = []
        for i in range(len(host_keys)):
            cfg = NetConfig(seed=hashlib.sha256(b"bench-host-net:%d" % i).digest(),
                            stream_timeout_s=30.0)
            transports.append(await nursery.start(_hold_transport, cfg))
        owner_peer = ""
        for t in transports:
            owner_peer = await t.connect(owner_addr)
        counts = [0] * len(host_keys)
        for batch in batches:
            results.append(await measure(transports, host_keys, owner_peer, counts, batch,
                                         seconds, warmup, owner_pid, owner_pub))
            print(_row(results[-1]), flush=True)
        nursery.cancel_scope.cancel()
    return results


async def _hold_transport(cfg: NetConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED
                          ) -> None:
    async with open_transport(cfg) as t:
        task_status.started(t)
        await trio.sleep_forever()


HEADER = ("| batch | permissions/s | requests/s | p50 ms | p99 ms | owner CPU % "
          "| hosts CPU % | load avg |\n|---:|---:|---:|---:|---:|---:|---:|---:|")


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _row(r: dict[str, float]) -> str:
    return (f"| {r['batch']:.0f} | {r['perm_s']:,.0f} | {r['req_s']:,.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['owner_cpu_pct']:.0f} | {_pct(r['hosts_cpu_pct'])} "
            f"| {r['load']:.1f} |")


# ------------------------------------------------------------------ --direct


async def bench_direct(hosts: int, batches: list[int], seconds: float, warmup: float
                       ) -> None:
    from node.config import OwnerRole
    from tests.roles.owner.owner_kit import HOST, HostClient, OwnerNode

    class NoNetwork:
        def set_handler(self, *_args: Any) -> None:
            pass

    with tempfile.TemporaryDirectory(prefix="bench-permission-direct-") as tmp:
        node = OwnerNode.create(Path(tmp))
        node.setup_model(escrow=10**8)
        service = node.service(NoNetwork(), OwnerRole(
            enabled=True, rate_per_s=1_000_000, rate_burst=1_000_000, redeem_threshold=10**18))
        # One (model, host) pair per task: a pair's requests are served one at a time,
        # so four pairs stand for four hosts (the kit has one host account).
        clients = [HostClient(node.keys[HOST], node.chain.chain_id)]
        clients += [_extra_pair(node, i) for i in range(1, hosts)]
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            for batch in batches:
                print(_row(await _direct_round(service, clients, batch, seconds, warmup)),
                      flush=True)
            nursery.cancel_scope.cancel()
        node.close()


async def _direct_round(service: Any, clients: list[Any], batch: int, seconds: float,
                        warmup: float) -> dict[str, float]:
    rtts: list[float] = []
    now = time.perf_counter()
    start, stop = now + warmup, now + warmup + seconds

    async def loop(i: int) -> None:
        c = clients[i]
        while True:
            req = c.batch([hashlib.sha256(b"%d:%d" % (i, c.count + j)).digest()
                           for j in range(batch)])
            data = encode_request(req)
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            await service.handle(f"peer{i}", data)
            c.accepted(req)
            if t0 >= start:
                rtts.append(time.perf_counter() - t0)

    cpu0 = time.process_time()
    async with trio.open_nursery() as inner:
        for i in range(len(clients)):
            inner.start_soon(loop, i)
    cpu = time.process_time() - cpu0
    return {"batch": batch, "perm_s": len(rtts) * batch / seconds, "req_s": len(rtts) / seconds,
            "p50_ms": statistics.median(rtts) * 1000, "p99_ms": percentile(rtts, 0.99) * 1000,
            # the whole process: the owner and the four hosts' request building
            "owner_cpu_pct": cpu / (seconds + warmup) * 100, "hosts_cpu_pct": math.nan,
            "load": os.getloadavg()[0]}


def _extra_pair(node: Any, i: int) -> Any:
    """Another model of the same owner served by the same host: an independent pair."""
    from tests.roles.owner.owner_kit import HOST, OMLIZER, OWNER, HostClient

    model_id = b"bench-model-%d" % i
    node.ok(OWNER, RegisterModelBody(model_id=model_id, weights_hash=b"\x11" * 32,
                                     price_per_query=PRICE,
                                     omlizers=(node.address(OMLIZER),)))
    node.ok(HOST, RequestAccessBody(model_id=model_id, collateral=100))
    node.ok(OMLIZER, CommitOmlizationBody(
        model_id=model_id, host=node.address(HOST), package_hash=b"\x22" * 32,
        fp_root=b"\x33" * 32, fp_count=4, package_blob=b"\x44" * 32))
    node.ok(HOST, FundChannelBody(model_id=model_id, amount=10**8))
    return HostClient(node.keys[HOST], node.chain.chain_id, model_id=model_id, price=PRICE)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured time per batch size")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--hosts", type=int, default=4)
    ap.add_argument("--batches", default="16,64,128,256",
                    help="comma-separated batch sizes (query hashes per request)")
    ap.add_argument("--direct", action="store_true",
                    help="the owner service alone, in this process, no network")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.direct:
        print(f"owner service in-process, {args.hosts} concurrent pairs, no network, "
              f"{args.seconds:g} s per batch size, {os.cpu_count()} CPUs")
        print(HEADER, flush=True)
        trio.run(bench_direct, args.hosts, batches, args.seconds, args.warmup)
        return
    host_keys = [key(f"host{i}") for i in range(args.hosts)]
    omlizer = key("omlizer")
    with tempfile.TemporaryDirectory(prefix="bench-permission-") as tmp:
        net = start_owner(Path(tmp), host_keys, omlizer)
        try:
            owner = Home(net.spec("node0").home).account_key().key
            setup_chain(net, owner, host_keys, omlizer)
            print(f"owner node pid {net.procs['node0'].proc.pid}; {args.hosts} hosts, "
                  f"{args.seconds:g} s per batch size, {os.cpu_count()} CPUs")
            print(HEADER, flush=True)
            trio.run(bench, net, host_keys, batches, args.seconds, args.warmup,
                     owner.public_key)
        finally:
            net.stop_all()


if __name__ == "__main__":
    main()
