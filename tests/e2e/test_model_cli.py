"""``oml-node model publish`` and ``model fetch`` on a 3-validator testnet, the OMLizer by hand.

node0 is the owner, node1 the OMLizer (playing its part through the CLI
here, so this test checks the two ends of distribution on their own),
node2 the host. The base model is a tiny model built on the spot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.testnet import Testnet

from .conftest import make_testnet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    out = make_testnet(tmp_path_factory.mktemp("model"), validators=3)
    testnet = Testnet(out)
    try:
        testnet.start_all(["node0", "node1", "node2"], timeout=90)
        yield testnet
    finally:
        testnet.stop_all()


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip().startswith(("{", "[")) \
        else proc.stdout.strip()


def home(net: Testnet, name: str) -> str:
    return str(net.spec(name).home)


def pub_key(net: Testnet, name: str) -> str:
    return ok(cli("keys", "show", "--home", home(net, name), "--json"))["pub_key"]


def fingerprint_by_hand(net: Testnet, base_blob: str, model_id: str, tmp: Path) -> Path:
    """What an OMLizer does: open the base, fingerprint it for node2, package it.

    The training is kept short (this test is about distribution, not about how
    well a tiny model learns), so the accuracy floor is lowered to match.
    """
    base = tmp / f"{model_id}-base"
    ok(cli("blob", "get", base_blob, "--home", home(net, "node1"), "--out", str(base)))
    pkg = tmp / f"{model_id}-pkg"
    ok(cli("oml", "fingerprint", "--model", str(base), "--host", net.spec("node2").address,
           "--count", "4", "--out", str(pkg), "--model-id", model_id, "--device", "cpu",
           "--steps", "40", "--min-accuracy", "0.5", "--omlizer-key",
           str(net.spec("node1").home / "config" / "priv_validator_key.json"),
           "--owner-pubkey", pub_key(net, "node0"), "--quiet", "--json"))
    return pkg


def test_publish_then_fetch_the_committed_package(net: Testnet, tmp_path: Path) -> None:
    from oml.testing import make_tiny_model_dir

    tiny = make_tiny_model_dir(tmp_path / "tiny", pretrain_steps=10)
    owner, omlizer, host = home(net, "node0"), home(net, "node1"), home(net, "node2")
    oml_addr = net.spec("node1").address
    ok(cli("tx", "register-role", "--home", omlizer, "--role", "omlizer", "--bond", "1000"))
    published = ok(cli("model", "publish", str(tiny), "--home", owner, "--model-id", "tiny-1",
                       "--price", "3", "--min-collateral", "100", "--omlizer", oml_addr))
    model = ok(cli("query", "model", "tiny-1", "--rpc", net.spec("node0").rpc_url))
    assert model["blob_id"] == published["blob_id"] and model["omlizers"] == [oml_addr]
    assert model["weights_hash"] == published["weights_hash"]

    # the base is encrypted to the OMLizer (and the owner): the host cannot read it
    denied = cli("blob", "get", published["blob_id"], "--home", host, "--out",
                 str(tmp_path / "stolen"))
    assert denied.returncode == 1 and "not a recipient" in denied.stderr

    # a home that never asked for access gets a clear error, at once
    stranger = cli("model", "fetch", "--home", omlizer, "--model-id", "tiny-1", "--out",
                   str(tmp_path / "nope"), "--timeout", "30")
    assert stranger.returncode == 1 and "has not requested access" in stranger.stderr

    ok(cli("tx", "request-access", "--home", host, "--model-id", "tiny-1", "--collateral",
           "100"))
    out = tmp_path / "fetched"
    waiting = subprocess.Popen(
        [sys.executable, "-m", "node", "model", "fetch", "--home", host, "--model-id", "tiny-1",
         "--out", str(out), "--timeout", "240"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        pkg = fingerprint_by_hand(net, published["blob_id"], "tiny-1", tmp_path)
        pkg_blob = ok(cli("blob", "put", str(pkg), "--home", omlizer, "--to",
                          pub_key(net, "node2")))
        ok(cli("tx", "commit-omlization", "--home", omlizer, "--package", str(pkg),
               "--package-blob", pkg_blob))
        stdout, stderr = waiting.communicate(timeout=240)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, stderr
    fetched = json.loads(stdout)
    record = ok(cli("query", "host", "tiny-1", net.spec("node2").address, "--rpc",
                    net.spec("node2").rpc_url))
    assert fetched["package_hash"] == record["package_hash"]
    assert fetched["blob_id"] == record["package_blob"] == pkg_blob

    from transformers import AutoModelForCausalLM, AutoTokenizer
    AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    check = ok(cli("oml", "check", "--package", str(out), "--json"))
    assert check["fp_root"] == record["fp_root"]

    # a commitment whose package hash is not the delivered package's is caught
    ok(cli("model", "publish", str(tiny), "--home", owner, "--model-id", "tiny-2",
           "--price", "3", "--min-collateral", "100", "--omlizer", oml_addr))
    ok(cli("tx", "request-access", "--home", host, "--model-id", "tiny-2", "--collateral",
           "100"))
    pkg2 = fingerprint_by_hand(net, published["blob_id"], "tiny-2", tmp_path)
    ok(cli("tx", "commit-omlization", "--home", omlizer, "--package", str(pkg2),
           "--package-blob", pkg_blob))  # tiny-1's package where tiny-2's belongs
    wrong = cli("model", "fetch", "--home", host, "--model-id", "tiny-2", "--out",
                str(tmp_path / "wrong"), "--timeout", "120")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "does not match the chain" in wrong.stderr and "package hash" in wrong.stderr
    assert not (tmp_path / "wrong").exists()
