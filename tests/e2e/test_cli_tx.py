"""The tx and query CLI against one real validator process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.rpc_client import RpcClient, wait_until
from node.testnet import NodeSpec, Testnet, free_base_port, init_testnet

from ._settings import FAST_CONSENSUS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Testnet, NodeSpec]]:
    out = tmp_path_factory.mktemp("cli") / "net"
    specs = init_testnet(out, validators=1, base_port=free_base_port(1), chain_id="oml-cli",
                         consensus=FAST_CONSENSUS)
    net = Testnet(out)
    try:
        net.start_all(timeout=90)
        yield net, specs[0]
    finally:
        net.stop_all()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def test_register_model_and_role_then_query(solo: tuple[Testnet, NodeSpec]) -> None:
    _net, node = solo
    home = str(node.home)
    res = cli("tx", "register-model", "--home", home, "--model-id", "llama-oml",
              "--weights-hash", "ab" * 32, "--price-per-query", "5",
              "--min-collateral", "100", "--metadata", '{"name": "llama"}')
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["tx_result"]["code"] == 0
    q = cli("query", "model", b"llama-oml".hex(), "--rpc", node.rpc_url)
    assert q.returncode == 0, q.stderr
    model = json.loads(q.stdout)
    assert model["owner"] == node.address and model["price_per_query"] == 5
    res = cli("tx", "register-role", "--home", home, "--role", "prover", "--bond", "5000")
    assert res.returncode == 0, res.stdout + res.stderr


def test_async_transfer_and_failures_set_the_exit_status(solo: tuple[Testnet, NodeSpec]
                                                         ) -> None:
    _net, node = solo
    home = str(node.home)
    res = cli("tx", "transfer", "--home", home, "--to", "11" * 20, "--amount", "7", "--async")
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["code"] == 0 and len(out["hash"]) == 64
    with RpcClient(node.rpc_url) as c:  # committed soon after; later nonces depend on it
        wait_until(lambda: c.call("tx", {"hash": out["hash"]}), timeout=30,
                   what="the async transfer to commit")
    # a nonce already used: the mempool rejects it, the command exits 1
    res = cli("tx", "transfer", "--home", home, "--to", "11" * 20, "--amount", "7",
              "--nonce", "0")
    assert res.returncode == 1
    assert json.loads(res.stdout)["check_tx"]["code"] != 0
    # more than the balance: committed but failed, exit 1
    res = cli("tx", "transfer", "--home", home, "--to", "11" * 20, "--amount", str(2**63))
    assert res.returncode == 1
    assert json.loads(res.stdout)["tx_result"]["code"] != 0
    # bad arguments never reach the node
    assert cli("tx", "transfer", "--home", home, "--to", "zz", "--amount", "1").returncode == 2
    # a node that is not there: a clear error, exit 1
    res = cli("query", "status", "--rpc", "http://127.0.0.1:9")
    assert res.returncode == 1 and "Error" in res.stderr
