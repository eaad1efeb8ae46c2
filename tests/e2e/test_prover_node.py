"""The prover role in a real node process: started from config, follows the chain, answers RPC.

One validator process runs ``[roles.prover]`` with one configured endpoint;
the test registers a model and a host whose ``request_access`` names an
endpoint, and checks through JSON-RPC and the CLI only that the role
records the host's endpoint as a target beside the configured one. (The
whole probe-and-claim story with an OMLizer and hosts is the demo's e2e.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from consensus.crypto import PrivateKey
from node.config import load_config, render_config, with_changes
from node.home import Home
from node.ledger import build_tx
from node.ledger.txs import RegisterModelBody, RequestAccessBody
from node.rpc_client import wait_until
from node.testnet import AUTO_PORTS, Testnet, init_testnet

from ._settings import FAST_CONSENSUS

pytestmark = pytest.mark.slow

CHAIN = "oml-e2e-prover"
MODEL = b"e2e-probed-model"
OWNER_KEY = PrivateKey(b"\x51" * 32)
HOST_KEY = PrivateKey(b"\x52" * 32)
CONFIGURED = "http://127.0.0.1:9/v1"
REGISTERED = "http://127.0.0.1:7/v1"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    out = tmp_path_factory.mktemp("prover") / "testnet"
    init_testnet(out, validators=1, base_port=AUTO_PORTS, chain_id=CHAIN,
                 consensus=FAST_CONSENSUS,
                 fund=tuple(k.address.hex() for k in (OWNER_KEY, HOST_KEY)))
    home = Home(out / "node0")
    config = with_changes(home.config(), roles={"prover": {
        "enabled": True, "endpoints": [CONFIGURED], "probe_interval_ms": 200,
        "request_timeout_ms": 500}})
    home.config_file.write_text(render_config(config), "utf-8")
    assert load_config(home.config_file).roles.prover.endpoints == [CONFIGURED]
    testnet = Testnet(out)
    try:
        testnet.start_all(["node0"], timeout=90)
        yield testnet
    finally:
        codes = testnet.stop_all()
        assert codes == {"node0": 0}, codes


def call(net: Testnet, method: str, **params: Any) -> Any:
    with net.client("node0") as c:
        return c.call(method, params)


def send(net: Testnet, key: PrivateKey, body: Any) -> None:
    nonce = call(net, "account", address=key.address.hex())["nonce"]
    res = call(net, "broadcast_tx_commit", tx=build_tx(key, CHAIN, nonce, body).hex())
    assert res["check_tx"]["code"] == 0 and res["tx_result"]["code"] == 0, res


def test_prover_role_runs_in_the_node_and_learns_registered_endpoints(net: Testnet) -> None:
    first = call(net, "prover_probes")
    assert first["probes"] == [] and first["claims"] == [] and first["keysets"] == []
    assert first["targets"] == [{"endpoint": CONFIGURED, "model_id": None, "host": None}]
    send(net, OWNER_KEY, RegisterModelBody(model_id=MODEL, weights_hash=bytes(32),
                                           min_collateral=10,
                                           omlizers=(OWNER_KEY.address,)))
    send(net, HOST_KEY, RequestAccessBody(model_id=MODEL, collateral=100,
                                          endpoint=REGISTERED))

    def registered() -> Any:
        targets = call(net, "prover_probes")["targets"]
        return targets if len(targets) == 2 else None
    targets = wait_until(registered, timeout=30, what="the host's endpoint as a target")
    assert {"endpoint": REGISTERED, "model_id": MODEL.hex(),
            "host": HOST_KEY.address.hex()} in targets
    out = subprocess.run([sys.executable, "-m", "node", "query", "probes", "--limit", "5",
                          "--rpc", net.spec("node0").rpc_url],
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout)["total_probes"] == 0
