"""The tx and query CLI against one real validator process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from node.config import load_config
from node.keys import AccountKey
from node.rpc_client import RpcClient, wait_until
from node.testnet import AUTO_PORTS, NodeSpec, Testnet, init_testnet

from ._settings import FAST_CONSENSUS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Testnet, NodeSpec]]:
    out = tmp_path_factory.mktemp("cli") / "net"
    init_testnet(out, validators=1, base_port=AUTO_PORTS, chain_id="oml-cli",
                 consensus=FAST_CONSENSUS)
    # blocks come every second or so and each CLI call starts Python: give the claim's
    # windows room for one process per reveal (and claims of 4 keys, not the default 8)
    for genesis in out.glob("*/config/genesis.json"):
        data = json.loads(genesis.read_text())
        data["app_state"].setdefault("params", {}).update(
            {"reveal_window": 200, "challenge_window": 200, "claim_open_window": 200,
             "claim_min_matches": 4})
        genesis.write_text(json.dumps(data))
    net = Testnet(out)
    try:
        net.start_all(timeout=90)
        yield net, net.spec("node0")  # with the ports the node bound
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
              "--min-collateral", "100", "--metadata", '{"name": "llama"}',
              "--blob-id", "0xEF" + "ef" * 31)
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["tx_result"]["code"] == 0
    q = cli("query", "model", "llama-oml", "--rpc", node.rpc_url)
    assert q.returncode == 0, q.stderr
    model = json.loads(q.stdout)
    assert model["owner"] == node.address and model["price_per_query"] == 5
    assert model["blob_id"] == "ef" * 32
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
    # more than the balance: it could only fail, so check_tx refuses it (no nonce used), exit 1
    res = cli("tx", "transfer", "--home", home, "--to", "11" * 20, "--amount", str(2**63))
    assert res.returncode == 1
    out = json.loads(res.stdout)
    assert out["check_tx"]["codespace"] == "insufficient_funds" and out["tx_result"] is None
    # bad arguments never reach the node
    assert cli("tx", "transfer", "--home", home, "--to", "zz", "--amount", "1").returncode == 2
    # a node that is not there: a clear error, exit 1
    res = cli("query", "status", "--rpc", "http://127.0.0.1:9")
    assert res.returncode == 1 and "Error" in res.stderr


def client_home(node: NodeSpec, dst: Path) -> tuple[str, str]:
    """A home on the same chain and RPC as ``node`` but with a fresh account key.

    The node bound port 0; the copy's ``[rpc] laddr`` names the port it got.
    """
    shutil.copytree(node.home / "config", dst / "config")
    cfg = dst / "config" / "config.toml"
    cfg.write_text(cfg.read_text().replace('laddr = "127.0.0.1:0"',
                                           f'laddr = "127.0.0.1:{node.rpc_port}"', 1))
    assert load_config(cfg).rpc.laddr == f"127.0.0.1:{node.rpc_port}"
    key = AccountKey.generate()
    key.save(dst / "config" / "priv_validator_key.json", overwrite=True)
    return str(dst), key.address.hex()


def ok(res: subprocess.CompletedProcess[str]) -> dict:
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def failed_code(res: subprocess.CompletedProcess[str]) -> int:
    assert res.returncode == 1, res.stdout + res.stderr
    return int(json.loads(res.stdout)["tx_result"]["code"])


def test_oml_life_cycle_through_the_cli(solo: tuple[Testnet, NodeSpec],
                                        tmp_path: Path) -> None:
    """Owner, OMLizer and host (three accounts) drive a model to a redeemed voucher."""
    from oml.manifest import Manifest
    from oml.sidecar import make_secrets, seal_secrets

    _net, node = solo
    owner = str(node.home)
    omlizer, oml_addr = client_home(node, tmp_path / "omlizer")
    host, host_addr = client_home(node, tmp_path / "host")
    mid = "ab" * 32  # the `oml fingerprint` default: base weights hash as hex TEXT
    out = ok(cli("tx", "transfer", "--home", owner, "--to", oml_addr, "--amount", "5000",
                 "--async"))
    ok(cli("tx", "transfer", "--home", owner, "--to", host_addr, "--amount", "5000"))
    with RpcClient(node.rpc_url) as c:
        wait_until(lambda: c.call("tx", {"hash": out["hash"]}), timeout=30,
                   what="the async transfer to commit")
    ok(cli("tx", "register-model", "--home", owner, "--model-id", mid,
           "--weights-hash", "cd" * 32, "--price-per-query", "3", "--min-collateral", "100",
           "--omlizer", oml_addr))
    # the id is the UTF-8 bytes of the text, exactly what the OML package puts in leaves
    model = ok(cli("query", "model", mid, "--rpc", node.rpc_url))
    assert model["model_id"] == mid and model["model_id_hex"] == mid.encode().hex()
    assert model["omlizers"] == [oml_addr]
    assert model["blob_id"] == ""  # not published through storage
    ok(cli("tx", "update-model", "--home", owner, "--model-id", mid, "--blob-id", "b1" * 32))
    assert ok(cli("query", "model", mid, "--rpc", node.rpc_url))["blob_id"] == "b1" * 32
    ok(cli("tx", "update-model", "--home", owner, "--model-id", mid, "--price-per-query", "4"))
    model = ok(cli("query", "model", mid, "--rpc", node.rpc_url))
    assert model["price_per_query"] == 4 and model["omlizers"] == [oml_addr]  # others kept
    assert model["blob_id"] == "b1" * 32 and model["weights_hash"] == "cd" * 32
    ok(cli("tx", "register-role", "--home", omlizer, "--role", "omlizer", "--bond", "1000"))
    ok(cli("tx", "request-access", "--home", host, "--model-id", mid, "--collateral", "100"))

    # the OMLizer commits straight from the package's manifest
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    fps = [SimpleNamespace(index=i, key=f"secret key {i}", response=f"answer {i}")
           for i in range(8)]
    secrets = make_secrets(mid, bytes.fromhex(host_addr), fps)
    oml_key = AccountKey.load(tmp_path / "omlizer" / "config" / "priv_validator_key.json")
    (tmp_path / "pkg.sidecar").write_bytes(seal_secrets(secrets, oml_key.public_key))
    man = Manifest(model_id=mid, host=bytes.fromhex(host_addr), base_weights_hash=b"\1" * 32,
                   weights_hash=b"\2" * 32, fp_root=secrets.root(), fp_count=8,
                   owner_pubkey=oml_key.public_key).signed(oml_key.key.seed)
    man.save(pkg / "manifest.json")
    ok(cli("tx", "commit-omlization", "--home", omlizer, "--package", str(pkg),
           "--package-blob", "b2" * 32))
    rec = ok(cli("query", "host", mid, host_addr, "--rpc", node.rpc_url))
    assert rec["package_hash"] == man.package_hash().hex() and rec["fp_count"] == 8
    assert rec["package_blob"] == "b2" * 32

    # fees: the host escrows, signs a voucher offline, the owner redeems it
    ok(cli("tx", "fund-channel", "--home", host, "--model-id", mid, "--amount", "500"))
    voucher = tmp_path / "voucher.json"
    v = ok(cli("tx", "sign-voucher", "--home", host, "--model-id", mid,
               "--cumulative-count", "10", "--cumulative-amount", "40", "--out", str(voucher)))
    assert v["host"] == host_addr and json.loads(voucher.read_text()) == v
    before = int(ok(cli("query", "account", node.address, "--rpc", node.rpc_url))["balance"])
    ok(cli("tx", "redeem", "--home", owner, "--voucher", str(voucher)))
    after = int(ok(cli("query", "account", node.address, "--rpc", node.rpc_url))["balance"])
    assert after - before == 40
    # the same voucher again adds nothing: the ledger refuses, exit 1
    assert failed_code(cli("tx", "redeem", "--home", owner, "--voucher", str(voucher))) == 22


    # a claim: the owner (as prover) commits and opens it, the OMLizer reveals each
    # claimed leaf from its sidecar, the host rebuts with a permission the owner signed
    # before the claim's commitment
    ok(cli("tx", "register-role", "--home", owner, "--role", "prover", "--bond", "1000"))
    with RpcClient(node.rpc_url) as c:
        height = c.height()
    perm = tmp_path / "perm.json"
    ok(cli("tx", "sign-permission", "--home", owner, "--model-id", mid, "--host", host_addr,
           "--seq", "1", "--query", "secret key 3", "--issued-height", str(height),
           "--out", str(perm)))
    # two phases: commit (the draft file keeps the salt), open in a later block
    draft = tmp_path / "claim.draft.json"
    items = [a for i in range(3, 7) for a in ("--item", str(i), f"secret key {i}",
                                              f"answer {i} and more")]
    res = ok(cli("tx", "commit-claim", "--home", owner, "--model-id", mid, "--host", host_addr,
                 *items, "--draft", str(draft)))  # bond: the least the ledger accepts
    claim_id = next(int(e["attributes"]["claim_id"]) for e in res["tx_result"]["events"]
                    if e["type"] == "claim_committed")
    assert json.loads(draft.read_text())["salt"] and draft.stat().st_mode & 0o077 == 0
    assert ok(cli("query", "claim", str(claim_id),
                  "--rpc", node.rpc_url))["status"] == "committed"
    # the draft is never overwritten: it may hold another claim's salt
    assert cli("tx", "commit-claim", "--home", owner, "--model-id", mid, "--host", host_addr,
               *items, "--draft", str(draft)).returncode == 2
    res = ok(cli("tx", "open-claim", "--home", owner, "--claim-id", str(claim_id),
                 "--draft", str(draft)))
    assert any(e["type"] == "claim_opened" and e["attributes"]["indices"] == "3,4,5,6"
               for e in res["tx_result"]["events"])
    for i in range(3, 7):
        ok(cli("tx", "reveal", "--home", omlizer, "--claim-id", str(claim_id),
               "--fp-index", str(i), "--sidecar", str(tmp_path / "pkg.sidecar")))
    assert ok(cli("query", "claim", str(claim_id), "--rpc", node.rpc_url))["status"] == "matched"
    ok(cli("tx", "rebut", "--home", host, "--claim-id", str(claim_id), "--fp-index", "3",
           "--permission", str(perm)))
    assert ok(cli("query", "claim", str(claim_id),
                  "--rpc", node.rpc_url))["status"] == "dismissed"

    # roles: an OMLizer with a committed host may not leave (WRONG_STATE), nor may an
    # account leave a role it does not hold (NOT_FOUND); a prover may always leave
    assert failed_code(cli("tx", "unregister-role", "--home", omlizer,
                           "--role", "omlizer")) == 16
    assert failed_code(cli("tx", "unregister-role", "--home", host, "--role", "prover")) == 14
    ok(cli("tx", "unregister-role", "--home", owner, "--role", "prover"))


def test_bad_input_exits_2_and_sends_nothing(solo: tuple[Testnet, NodeSpec],
                                             tmp_path: Path) -> None:
    _net, node = solo
    home = str(node.home)
    with RpcClient(node.rpc_url) as c:
        nonce = c.call("account", {"address": node.address})["nonce"]
    bad_voucher = tmp_path / "v.json"
    bad_voucher.write_text(json.dumps({"model_id": "m", "host": "11" * 20,
                                       "cumulative_count": 1, "cumulative_amount": 1,
                                       "signature": "ab" * 10}))
    blob = ("--package-blob", "22" * 32)
    commit = ("commit-omlization", "--model-id", "m", "--host", "11" * 20, "--package-hash",
              "00" * 32, "--fp-root", "00" * 32, "--fp-count", "1")
    cases = [
        ("commit-omlization", "--model-id", "m", "--host", "zz" * 20, "--package-hash",
         "00" * 32, "--fp-root", "00" * 32, "--fp-count", "1", *blob),   # bad hex
        ("commit-omlization", "--model-id", "m", "--host", "11" * 20, "--package-hash",
         "00" * 31, "--fp-root", "00" * 32, "--fp-count", "1", *blob),   # wrong length
        ("commit-omlization", "--model-id", "m", *blob),                    # missing fields
        commit,                                                             # no package blob
        (*commit, "--package-blob", "22" * 31),                             # blob too short
        (*commit, "--package-blob", "2" * 64 + "x"),                        # blob not hex
        ("commit-omlization", "--package", str(tmp_path)),                  # package, no blob
        ("register-model", "--model-id", "m", "--weights-hash", "00" * 32,
         "--blob-id", "33" * 33),                                           # blob too long
        ("update-model", "--model-id", "m", "--blob-id", "not hex"),        # blob not hex
        ("update-model", "--model-id", "m", "--blob-id", "33" * 32,
         "--clear-blob-id"),                                                # contradiction
        ("redeem", "--voucher", str(tmp_path / "missing.json")),           # no such file
        ("redeem", "--voucher", str(bad_voucher)),                          # short signature
        ("rebut", "--claim-id", "0", "--fp-index", "0", "--seq", "1", "--issued-height", "1",
         "--signature", "xyz"),                                             # bad hex
        ("rebut", "--claim-id", "0", "--seq", "1", "--issued-height", "1",
         "--signature", "00" * 64),                                         # no --fp-index
        ("reveal", "--claim-id", "0", "--fp-index", "0", "--salt", "00", "--key", "k",
         "--response", "r", "--path", "00" * 31),                           # path length
        ("commit-claim", "--model-id", "m", "--host", "11" * 20,
         "--draft", str(tmp_path / "d1")),                                  # no items
        ("commit-claim", "--model-id", "m", "--host", "11" * 20, "--item", "x", "k", "o",
         "--draft", str(tmp_path / "d2")),                                  # index not a number
        ("commit-claim", "--model-id", "m", "--host", "11" * 20, "--item", "0", "k", "o",
         "--salt", "00" * 31, "--draft", str(tmp_path / "d3")),             # short salt
        ("open-claim", "--claim-id", "0", "--draft", str(tmp_path / "none")),  # no draft
        ("register-model", "--model-id", "x" * 65, "--weights-hash", "00" * 32),  # too long
        ("register-model", "--model-id", "m", "--weights-hash", "00" * 32,
         "--omlizer", "11" * 19),                                           # short address
        ("update-model", "--model-id", "m", "--split", "11" * 20),        # no basis points
        ("sign-voucher", "--model-id", "m", "--cumulative-count", "-1",
         "--cumulative-amount", "1"),                                       # negative
    ]
    for args in cases:
        res = cli("tx", args[0], "--home", home, *args[1:])
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert "Error" in res.stderr and not res.stdout, (args, res.stdout)
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "d3"))
    with RpcClient(node.rpc_url) as c:
        assert c.call("account", {"address": node.address})["nonce"] == nonce
        assert int(c.call("num_unconfirmed_txs", {}).get("n_txs", 0)) == 0


def test_model_ids_are_text_even_with_0x(solo: tuple[Testnet, NodeSpec]) -> None:
    """``0xab`` is the text ``0xab`` (as in the OML package), never the byte 0xab."""
    from click.testing import CliRunner

    from node.cli import main
    from node.ledger.vouchers import verify_voucher

    _net, node = solo
    res = CliRunner().invoke(main, ["tx", "sign-voucher", "--home", str(node.home),
                                    "--model-id", "0xab", "--cumulative-count", "2",
                                    "--cumulative-amount", "9"])
    assert res.exit_code == 0, res.output
    v = json.loads(res.output)
    key = AccountKey.load(node.home / "config" / "priv_validator_key.json")
    sig = bytes.fromhex(v["signature"])
    assert v["model_id"] == "0xab"
    assert verify_voucher(key.public_key, "oml-cli", b"0xab", key.address, 2, 9, sig)
    assert not verify_voucher(key.public_key, "oml-cli", b"\xab", key.address, 2, 9, sig)
