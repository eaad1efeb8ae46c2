"""The host gateway on a real node process, paying a real owner node (issue 10, host half).

node0 (validator) runs ``[roles.owner]`` and owns the model; node1 (a full
node) runs ``[roles.host]`` with a tiny model folder. The test process plays
the OMLizer (commits a fingerprint root for node1) and the prover, talks to
the gateway with the official ``openai`` client, and checks the rest through
JSON-RPC only. The gateway funds its own fee channel from ``fund_budget``,
finds the owner among its peers, and rebuts the prover's claim by itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from consensus.crypto import PrivateKey
from node.config import render_config, with_changes
from node.home import Home
from node.ledger import build_tx, claim_commitment
from node.ledger.txs import (
    CommitClaimBody,
    CommitOmlizationBody,
    OpenClaimBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
)
from node.listenfile import read_listen_file
from node.rpc_client import wait_until
from node.testnet import AUTO_PORTS, Testnet, init_testnet
from tests.ledger.ledger_helpers import PACKAGE, PACKAGE_BLOB, make_fingerprints

from ._settings import FAST_CONSENSUS
from .conftest import set_genesis_params

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

CHAIN = "oml-e2e-gateway"
MODEL = b"e2e-gw-model"
NAME = MODEL.decode()
PRICE = 3
API_KEY = "sk-e2e-gateway"
OMLIZER_KEY = PrivateKey(b"\x61" * 32)
PROVER_KEY = PrivateKey(b"\x62" * 32)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    from oml.testing import make_tiny_model_dir

    root = tmp_path_factory.mktemp("gateway")
    model_dir = make_tiny_model_dir(root / "model", pretrain_steps=0)
    out = root / "testnet"
    init_testnet(out, validators=1, non_validators=1, base_port=AUTO_PORTS, chain_id=CHAIN,
                 consensus=FAST_CONSENSUS,
                 fund=tuple(k.address.hex() for k in (OMLIZER_KEY, PROVER_KEY)))
    set_genesis_params(out, {"claim_min_matches": 2})  # the host commits 3 fingerprints
    owner_home, host_home = Home(out / "node0"), Home(out / "node1")
    owner_home.config_file.write_text(render_config(with_changes(
        owner_home.config(), roles={"owner": {"enabled": True}})), "utf-8")
    host_home.config_file.write_text(render_config(with_changes(host_home.config(), roles={
        "host": {"enabled": True, "model_id": NAME, "model_dir": str(model_dir),
                 "laddr": "127.0.0.1:0", "api_keys": [API_KEY], "rate_limit_rpm": 0,
                 "max_new_tokens": 16, "fund_budget": 300 * PRICE,
                 "fund_threshold": 20 * PRICE, "fund_amount": 100 * PRICE}})), "utf-8")
    testnet = Testnet(out)
    try:
        testnet.start_all(timeout=120)
        yield testnet
    finally:
        testnet.stop_all()


def call(net: Testnet, node: str, method: str, **params: Any) -> Any:
    with net.client(node) as c:
        return c.call(method, params)


def send(net: Testnet, key: PrivateKey, body: Any) -> dict[str, Any]:
    nonce = call(net, "node0", "account", address=key.address.hex())["nonce"]
    res = call(net, "node0", "broadcast_tx_commit",
               tx=build_tx(key, CHAIN, nonce, body).hex())
    assert res["check_tx"]["code"] == 0 and res["tx_result"]["code"] == 0, res
    return res


def gateway_url(net: Testnet) -> str:
    home = net.spec("node1").home
    found: list[str] = []

    def ready() -> bool:
        info = read_listen_file(Path(home) / "data")
        found[:] = list(info.gateway) if info else []
        return bool(found)

    wait_until(ready, timeout=120, what="node1's gateway URL in listen.json")
    return found[0]


@pytest.mark.timeout(400)
def test_gateway_pays_answers_and_rebuts(net: Testnet) -> None:
    owner = Home(net.spec("node0").home).account_key().key
    host = bytes.fromhex(net.spec("node1").address)
    fps = make_fingerprints(MODEL, host, 3)
    send(net, owner, RegisterModelBody(model_id=MODEL, weights_hash=b"\x11" * 32,
                                       price_per_query=PRICE, omlizers=(OMLIZER_KEY.address,)))
    send(net, OMLIZER_KEY, RegisterRoleBody(role=int(Role.OMLIZER), bond=10_000))
    send(net, PROVER_KEY, RegisterRoleBody(role=int(Role.PROVER), bond=10_000))
    host_key = Home(net.spec("node1").home).account_key().key
    send(net, host_key, RequestAccessBody(model_id=MODEL, collateral=1_000))
    send(net, OMLIZER_KEY, CommitOmlizationBody(model_id=MODEL, host=host,
                                                package_hash=PACKAGE, fp_root=fps.root,
                                                fp_count=3, package_blob=PACKAGE_BLOB))

    def host_record() -> dict[str, Any]:
        return call(net, "node0", "host", model_id=MODEL.hex(), host=host.hex())

    # the gateway funds its channel by itself once the access is active
    wait_until(lambda: host_record()["escrow"] == 100 * PRICE, timeout=60,
               what="the gateway's own fund_channel")

    base = gateway_url(net)
    c = openai.OpenAI(base_url=base, api_key=API_KEY, max_retries=0, timeout=120)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="sk-nope", max_retries=0).models.list()
    assert [m.id for m in c.models.list().data] == [NAME]
    fp = c.completions.create(model=NAME, prompt=fps.keys[0], max_tokens=8, temperature=0)
    chat = c.chat.completions.create(model=NAME, max_tokens=8, temperature=0,
                                     messages=[{"role": "user", "content": "hello"}])
    chunks = list(c.chat.completions.create(
        model=NAME, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "hello"}]))
    assert fp.usage.total_tokens > 0 and chat.choices[0].message.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
        chat.choices[0].message.content

    # the CLI finds the same URL and reads the same usage
    cli = [sys.executable, "-m", "node"]
    url = subprocess.run([*cli, "host", "url", "--home", str(net.spec("node1").home)],
                         check=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert url.stdout.strip() == base
    usage_cli = subprocess.run([*cli, "query", "usage", "--rpc", net.spec("node1").rpc_url],
                               check=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert json.loads(usage_cli.stdout)["keys"]["config-1"]["requests"] == 3

    perms = call(net, "node1", "host_permissions")
    assert perms["permissions"] == 3 and perms["voucher"]["cumulative_count"] == 3
    assert perms["voucher"]["cumulative_amount"] == 3 * PRICE
    usage = call(net, "node1", "gateway_usage")
    assert usage["keys"]["config-1"]["requests"] == 3
    (row,) = call(net, "node0", "owner_vouchers")["vouchers"]
    assert row["cumulative_count"] == 3 and row["permissions_issued"] == 3

    # a claim naming the fingerprint key that went through the gateway (and one that did
    # not) is rebutted by the gateway by itself, once the claim is opened
    items = ((1, fps.keys[1], "x"), (0, fps.keys[0], fp.choices[0].text or "x"))
    send(net, PROVER_KEY, CommitClaimBody(
        model_id=MODEL, host=host, bond=100,
        commitment=claim_commitment(CHAIN, PROVER_KEY.address, MODEL, host, items, bytes(32))))
    send(net, PROVER_KEY, OpenClaimBody(claim_id=0, items=items, salt=bytes(32)))
    wait_until(lambda: call(net, "node0", "claim", claim_id=0)["status"] == "dismissed",
               timeout=60, what="the automatic rebuttal")
    (rebuttal,) = call(net, "node1", "host_permissions")["rebuttals"]
    assert rebuttal["state"] in ("sent", "done") and rebuttal["claim_id"] == 0
    assert rebuttal["fp_index"] == 0
    # the ledger dismissed it, so it verified the owner's permission for exactly this query,
    # issued before the claim's commitment
    claim = call(net, "node0", "claim", claim_id=0)
    assert rebuttal["issued_height"] < claim["committed_height"]
    assert host_record()["collateral"] == 1_000

