"""A 4-validator testnet of real OS processes, checked only through RPC and the CLI.

Tests in this module share one testnet (module fixture) and run in file
order: the later ones perturb it (kill, restart, add a full node).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.rpc_client import RpcError, wait_until
from node.testnet import Testnet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VALIDATORS = ["node0", "node1", "node2", "node3"]


def height(net: Testnet, name: str) -> int:
    with net.client(name) as c:
        return c.height()


def heights(net: Testnet, names: list[str]) -> dict[str, int]:
    return {n: height(net, n) for n in names}


def wait_heights(net: Testnet, names: list[str], at_least: int, timeout: float = 40) -> None:
    wait_until(lambda: all(h >= at_least for h in heights(net, names).values()),
               timeout=timeout, what=f"{names} to reach height {at_least}")


def block_ids(net: Testnet, name: str, h: int) -> tuple[str, str]:
    """(block hash, app hash in the header) of block ``h`` as node ``name`` reports it."""
    with net.client(name) as c:
        b = c.call("block", {"height": h})
    return b["block_id"]["hash"], b["block"]["header"]["app_hash"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_heights_advance_and_cli_transfer_is_visible_everywhere(testnet4: Testnet) -> None:
    net = testnet4
    wait_heights(net, VALIDATORS, 2)
    sender = net.spec("node0")
    recipient = net.spec("node4").address
    with net.client("node2") as c:
        before = c.call("account", {"address": recipient})
    amount = 12_345
    proc = cli("tx", "transfer", "--home", str(sender.home), "--to", recipient,
               "--amount", str(amount), "--rpc", net.spec("node1").rpc_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    assert result["tx_result"]["code"] == 0, result
    h = int(result["height"])
    assert h >= 1
    wait_heights(net, VALIDATORS, h + 1)
    ids = {n: block_ids(net, n, h) for n in VALIDATORS}
    assert len(set(ids.values())) == 1, ids
    # the app hash after block h is in block h+1's header: identical everywhere too
    nxt = {n: block_ids(net, n, h + 1) for n in VALIDATORS}
    assert len(set(nxt.values())) == 1, nxt
    for n in VALIDATORS:
        with net.client(n) as c:
            acct = c.call("account", {"address": recipient})
            tx = c.call("tx", {"hash": result["hash"]})
        assert int(acct["balance"]) == int(before["balance"]) + amount, (n, acct)
        assert int(tx["height"]) == h
    # status reports the app hash after its latest block: the next header carries it
    with net.client("node2") as c:
        st = c.status()["sync_info"]
    sh = int(st["latest_block_height"])
    wait_heights(net, ["node2"], sh + 1)
    assert block_ids(net, "node2", sh + 1)[1] == st["latest_app_hash"]
    # metrics: the endpoint serves the committed height
    with httpx.Client(timeout=10) as http:
        text = http.get(f"http://127.0.0.1:{net.spec('node0').metrics_port}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("oml_consensus_height "))
    assert float(line.split()[1]) >= h
    with httpx.Client(timeout=10) as http:  # node1 took the transaction from the CLI
        text = http.get(f"http://127.0.0.1:{net.spec('node1').metrics_port}/metrics").text
    line = next(x for x in text.splitlines()
                if x.startswith('oml_mempool_add_total{result="accepted"}'))
    assert float(line.split()[1]) >= 1
    # gossip counters reach the metrics (refreshed each second): node1 gossiped
    # the transaction on the tx topic, and the gossipsub heartbeat runs
    gossip_line = 'oml_gossip_messages_total{result="published",topic="oml/txs/1"}'

    def gossip_counted() -> bool:
        with httpx.Client(timeout=10) as http:
            metrics = http.get(f"http://127.0.0.1:{net.spec('node1').metrics_port}/metrics").text
        values = {x.rsplit(" ", 1)[0]: float(x.rsplit(" ", 1)[1])
                  for x in metrics.splitlines() if x.startswith("oml_gossip_")}
        return values.get(gossip_line, 0) >= 1 and values["oml_gossip_heartbeats_total"] >= 1

    wait_until(gossip_counted, timeout=10, what="gossip counters in the metrics")
    # the query CLI reads the same account
    q = cli("query", "account", recipient, "--rpc", net.spec("node3").rpc_url)
    assert q.returncode == 0, q.stderr
    assert int(json.loads(q.stdout)["balance"]) == int(before["balance"]) + amount


def test_bad_rpc_input_gets_jsonrpc_errors_and_node_keeps_running(testnet4: Testnet) -> None:
    net = testnet4
    url = net.spec("node1").rpc_url
    start = height(net, "node1")
    with httpx.Client(timeout=10) as http:
        r = http.post(url, content=b'{"jsonrpc": "2.0", "method": ',
                      headers={"content-type": "application/json"})
        assert r.json()["error"]["code"] == -32700
        r = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "no_such_method"})
        assert r.json()["error"]["code"] == -32601
        r = http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "block",
                                 "params": {"height": "tall"}})
        assert r.json()["error"]["code"] == -32602
        r = http.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "account",
                                 "params": {"address": 12}})
        assert r.json()["error"]["code"] == -32602
        r = http.post(url, json={"jsonrpc": "2.0", "id": 4, "method": "broadcast_tx_sync",
                                 "params": {"tx": "zz-not-hex"}})
        assert r.json()["error"]["code"] == -32602
        r = http.post(url, json=[1, 2])
        assert all(e["error"]["code"] == -32600 for e in r.json())
        big = (b'{"jsonrpc":"2.0","id":5,"method":"status","params":{"x":"'
               + b"a" * 2_000_000 + b'"}}')
        r = http.post(url, content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 or r.json()["error"]["code"] in (-32600, -32700)
    with net.client("node1") as c:
        assert c.call("genesis")["chain_id"] == "oml-e2e"
        try:  # not a transaction: an error object, or a result with a non-zero code
            res = c.call("broadcast_tx_sync", {"tx": "00" * 10})
            assert int(res["code"]) != 0, res
        except RpcError as exc:
            assert exc.code in (-32602, -32002)
        # the rejected bytes are not pending
        pending = c.call("unconfirmed_txs", {"limit": 100})
        assert "00" * 10 not in pending["txs"], pending
        assert int(pending["n_txs"]) == len(pending["txs"]) <= int(pending["total"]), pending
    wait_heights(net, VALIDATORS, start + 2)


def test_malformed_gossip_is_dropped_and_crashes_nobody(testnet4: Testnet, tmp_path: Path) -> None:
    """A foreign peer joins and floods garbage on every topic; nodes keep committing."""
    net = testnet4
    script = REPO / "tests" / "e2e" / "gossip_garbage.py"
    peers = [net.spec(n).p2p_addr for n in VALIDATORS]
    start = max(heights(net, VALIDATORS).values())
    proc = subprocess.run([sys.executable, str(script), *peers], check=False, capture_output=True,
                          text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "published" in proc.stdout
    for n in VALIDATORS:
        assert net.procs[n].alive, net.procs[n].log_tail()
    wait_heights(net, VALIDATORS, start + 2)


def test_killed_validator_others_continue_then_it_catches_up(testnet4: Testnet) -> None:
    net = testnet4
    live = ["node0", "node1", "node2"]
    net.kill("node3")
    start = max(heights(net, live).values())
    wait_heights(net, live, start + 3, timeout=60)
    net.start("node3")
    net.wait_healthy(["node3"], timeout=60)
    target = max(heights(net, live).values())
    wait_heights(net, ["node3"], target + 1, timeout=60)
    wait_heights(net, live, target + 1, timeout=60)
    # same blocks, and block target+1's header carries the same app hash after target
    for h in (target, target + 1):
        assert block_ids(net, "node3", h) == block_ids(net, "node0", h)


def test_late_full_node_syncs_from_genesis(testnet4: Testnet) -> None:
    net = testnet4
    net.start("node4")
    net.wait_healthy(["node4"], timeout=60)
    target = max(heights(net, VALIDATORS).values())
    wait_heights(net, ["node4"], target, timeout=60)
    for h in (1, target):
        assert block_ids(net, "node4", h) == block_ids(net, "node1", h)
    with net.client("node4") as c:
        st = c.status()
    assert st["validator_info"]["voting_power"] in (0, "0")


def test_whole_testnet_stops_cleanly_and_resumes_from_disk(testnet4: Testnet) -> None:
    net = testnet4
    names = [*VALIDATORS, "node4"]
    last = heights(net, names)
    codes = net.stop_all()
    assert all(code == 0 for code in codes.values()), codes  # SIGTERM -> clean exit
    for n in names:
        net.start(n)
    net.wait_healthy(names, timeout=90)
    now = heights(net, names)
    assert all(now[n] >= last[n] for n in names), (last, now)  # nothing lost
    top = max(now.values())
    wait_heights(net, names, top + 3, timeout=60)
    assert len({block_ids(net, n, top + 2) for n in names}) == 1
