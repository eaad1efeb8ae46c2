"""The OMLizer role in real node processes: request -> committed, delivered package, no hand.

A single validator (node0: the host, which also runs an OMLizer that is
not authorised) and a full node (node1: model owner and the authorised
OMLizer) run as OS processes; node2's home only holds the prover's key.
Every transaction goes to node0's RPC. The model is a tiny Llama built on
the spot and the recipe is short (4 keys with one backup each), so a job
takes seconds. node1 is SIGKILLed while it fingerprints: after the restart
the job finishes and exactly one commit_omlization is on chain. (The
OMLizer is the full node so that the kill does not stop the chain.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.config import load_config, render_config, with_changes
from node.home import Home
from node.ledger.txs import Kind, decode_tx
from node.rpc_client import wait_until
from node.testnet import Testnet

from .conftest import make_testnet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODEL = "tiny-oml"
FAST_OMLIZER = {"fingerprints": 4, "backups": 1, "epochs": 150, "batch_size": 8, "lr": 3e-3,
                "freeze_embeddings": False, "min_accuracy": 0.9, "torch_threads": 1,
                "job_timeout_s": 600}


def enable_omlizer(home: Path) -> None:
    h = Home(home)
    config = with_changes(load_config(h.config_file),
                          roles={"omlizer": {"enabled": True, **FAST_OMLIZER}})
    h.config_file.write_text(render_config(config))


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    # claims of 2 keys: the packages hold 4 keys (8 leaves with backups)
    out = make_testnet(tmp_path_factory.mktemp("omlizer"), validators=1, non_validators=2,
                       params={"claim_min_matches": 2})
    testnet = Testnet(out)
    for name in ("node0", "node1"):
        enable_omlizer(testnet.spec(name).home)
    try:
        testnet.start_all(["node0", "node1"], timeout=120)
        yield testnet
    finally:
        testnet.stop_all()


def cli(*args: str, timeout: float = 120) -> Any:
    proc = subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args[:2]}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def tx(net: Testnet, who: str, *args: str) -> dict[str, Any]:
    out = json.loads(cli("tx", *args, "--home", str(net.spec(who).home),
                         "--rpc", net.spec("node0").rpc_url))
    assert out["tx_result"]["code"] == 0, out
    return out


def call(net: Testnet, name: str, method: str, **params: Any) -> Any:
    with net.client(name) as c:
        return c.call(method, params)


def pubkey(net: Testnet, name: str) -> str:
    home = Home(net.spec(name).home)
    return home.account_key(home.config()).public_key.hex()


def seed(net: Testnet, name: str) -> bytes:
    home = Home(net.spec(name).home)
    return home.account_key(home.config()).key.seed


def jobs(net: Testnet, name: str) -> list[dict[str, Any]]:
    return call(net, name, "omlizer_jobs")["jobs"]


def txs_of_kind(net: Testnet, kind: Kind) -> list[Any]:
    """Every committed transaction of ``kind`` (scans block metas, fetches non-empty blocks)."""
    found = []
    last = call(net, "node0", "status")["sync_info"]["latest_block_height"]
    hi = int(last)
    while hi >= 1:
        page = call(net, "node0", "blockchain", minHeight=max(1, hi - 19), maxHeight=hi)
        for meta in page["block_metas"]:
            if meta["num_txs"]:
                block = call(net, "node0", "block", height=int(meta["height"]))
                for raw in block["block"]["data"]["txs"]:
                    t = decode_tx(bytes.fromhex(raw))
                    if t.kind == kind:
                        found.append(t)
        hi -= 20
    return found


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from oml.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny", pretrain_steps=20)


def test_request_to_committed_package_with_a_crash_then_an_automatic_reveal(
        net: Testnet, model_dir: Path, tmp_path: Path) -> None:
    from oml.hashing import weights_hash

    omlizer, host_node = net.spec("node1"), net.spec("node0")
    # the owner (node1) publishes the base to its OMLizer (itself) and registers the model
    blob = cli("blob", "put", str(model_dir), "--home", str(omlizer.home),
               "--to", pubkey(net, "node1")).strip()
    tx(net, "node1", "register-role", "--role", "omlizer", "--bond", "5000")
    tx(net, "node2", "register-role", "--role", "prover", "--bond", "5000")
    tx(net, "node1", "register-model", "--model-id", MODEL, "--weights-hash",
       weights_hash(model_dir).hex(), "--omlizer", omlizer.address, "--blob-id", blob,
       "--min-collateral", "10")
    tx(net, "node0", "request-access", "--model-id", MODEL, "--collateral", "1000")

    # kill the OMLizer while its worker trains, restart it
    wait_until(lambda: any(j["phase"] == "fingerprinting" for j in jobs(net, "node1")),
               timeout=120, interval=0.2, what="the job to start fingerprinting")
    net.kill("node1")
    net.start("node1")
    net.wait_healthy(["node0", "node1"], timeout=120)

    model_hex = MODEL.encode().hex()

    def active() -> Any:
        host = call(net, "node0", "host", model_id=model_hex, host=host_node.address)
        return host if host["status"] == "active" else None

    host = wait_until(active, timeout=240, interval=0.5, what="the host to become active")
    job = wait_until(lambda: (js := jobs(net, "node1"))[0]["handoff_provers"] == 1 and js[0],
                     timeout=30, interval=0.3, what="the keys to be dealt to the prover")
    assert len(jobs(net, "node1")) == 1
    assert job["state"] == "committed" and job["accuracy"] >= 0.9, job
    assert job["package_blob"] == host["package_blob"]
    for phase in ("fetching_base", "fingerprinting", "packaging", "storing", "committing"):
        assert phase in job["timings"], job["timings"]
    commits = txs_of_kind(net, Kind.COMMIT_OMLIZATION)
    assert len(commits) == 1 and commits[0].sender.hex() == omlizer.address

    # the host fetches the package, decrypts it with its key, and the toolkit accepts it
    out = tmp_path / "fetched"
    cli("blob", "get", host["package_blob"], "--home", str(host_node.home), "--out", str(out),
        timeout=180)
    cli("oml", "check", "--package", str(out), "--omlizer-pubkey", pubkey(net, "node1"))
    from oml.package import read_manifest

    manifest = read_manifest(out)
    assert manifest.host.hex() == host_node.address and manifest.model_id == MODEL
    assert manifest.package_hash().hex() == host["package_hash"]

    # the owner's sidecar is an audit: the keys and leaves, no response, no salt
    from oml.sidecar import open_owner_audit, open_secrets

    role_dir = net.data_dir("node1") / "roles" / "omlizer"
    audit = open_owner_audit((role_dir / "sidecars" / f"{job['job_id']}.owner").read_bytes(),
                             seed(net, "node1"))  # node1 owns the model (and OMLizes it)
    secrets = open_secrets((role_dir / "secrets" / f"{job['job_id']}.sealed").read_bytes(),
                           seed(net, "node1"))
    assert [a.key for a in audit.entries] == [e.key for e in secrets.entries]
    assert "response" not in audit.to_json()["entries"][0]

    # a claim (committed, then opened) against the host gets automatic reveals, one per
    # claimed leaf, that the ledger accepts
    first: dict[str, Any] = {}
    for e in secrets.entries:  # one leaf of each of two keys (keys have backup leaves)
        first.setdefault(e.key, e)
    entries = list(first.values())[:2]
    draft = tmp_path / "claim.draft"
    items = [a for e in entries for a in ("--item", str(e.index), e.key, e.response + " etc")]
    filed = tx(net, "node2", "commit-claim", "--model-id", MODEL, "--host", host_node.address,
               *items, "--draft", str(draft))
    claim_id = next(int(e["attributes"]["claim_id"]) for e in filed["tx_result"]["events"]
                    if e["type"] == "claim_committed")
    tx(net, "node2", "open-claim", "--claim-id", str(claim_id), "--draft", str(draft))
    claim = wait_until(
        lambda: (c := call(net, "node0", "claim", claim_id=claim_id))["status"] != "open"
        and c, timeout=60, interval=0.3, what="the reveals")
    assert claim["status"] == "matched"
    assert [i["response"] for i in claim["items"]] == [e.response for e in entries]
    assert len(txs_of_kind(net, Kind.REVEAL)) == 2

    # the node that is not authorised never acted
    assert jobs(net, "node0") == []
    assert call(net, "node0", "account", address=host_node.address)["nonce"] == 1
    roles = call(net, "node0", "roles")
    assert [r["address"] for r in roles["omlizers"]] == [omlizer.address]
    assert roles["omlizers"][0]["committed_hosts"] == 1 and len(roles["provers"]) == 1
    text = cli("query", "omlizer-jobs", "--rpc", net.spec("node1").rpc_url, "--state",
               "committed")
    assert json.loads(text)["jobs"][0]["job_id"] == job["job_id"]
