"""Storage peers on a 3-validator testnet of real OS processes (issue 8's acceptance tests).

Every node runs the storage role (``testnet init`` switches it on). Blobs go
in with ``oml-node blob put`` on one home and come out with ``blob get`` on
another, which asks its own node to find and fetch them; everything else is
checked through JSON-RPC. Misbehaving providers are separate processes
(``blob_peer.py``) that dial into the testnet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.rpc_client import wait_until
from node.testnet import Testnet

from .conftest import make_testnet

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NODES = ["node0", "node1", "node2"]
MB = 1 << 20


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """node0-node2 running; node3 (a full node) left stopped for the quota test."""
    out = make_testnet(tmp_path_factory.mktemp("storage"), validators=3, non_validators=1)
    testnet = Testnet(out)
    try:
        testnet.start_all(NODES, timeout=90)
        yield testnet
    finally:
        testnet.stop_all()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MB)
            f.write(os.urandom(n))
            left -= n
    return path


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          stdin=subprocess.DEVNULL)


def put(net: Testnet, name: str, path: Path, *extra: str) -> str:
    proc = cli("blob", "put", str(path), "--home", str(net.spec(name).home), *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def call(net: Testnet, name: str, method: str, **params: Any) -> Any:
    with net.client(name) as c:
        return c.call(method, params)


def same_bytes(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(MB), fb.read(MB)
            if x != y:
                return False
            if not x:
                return True


def test_put_on_node0_get_from_node2_which_then_provides_it(net: Testnet, files: Path) -> None:
    src = random_file(files / "twenty.bin", 20_000_000)
    blob_id = put(net, "node0", src)
    out = files / "twenty.out"
    proc = cli("blob", "get", blob_id, "--home", str(net.spec("node2").home), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert same_bytes(src, out)
    status = call(net, "node2", "blob_status", blob_id=blob_id)
    assert status["complete"] and status["pinned"] and status["chunks"] == 20
    # node2 fetched from the only holder, node0; now node1 sees two providers
    node0, node2 = net.spec("node0").peer_id, net.spec("node2").peer_id
    assert set(status["fetch"]["chunks_from"]) == {node0}
    providers = call(net, "node1", "blob_providers", blob_id=blob_id)["providers"]
    assert {node0, node2} <= set(providers) and providers[node2]["complete"]


def test_encrypted_blob_opens_only_for_its_recipient(net: Testnet, files: Path) -> None:
    src = random_file(files / "secret.bin", 3 * MB + 17)
    node1 = net.spec("node1")
    # an address is resolved to its public key on chain, so node1 must have sent a tx
    proc = cli("tx", "transfer", "--home", str(node1.home), "--to", net.spec("node0").address,
               "--amount", "1")
    assert proc.returncode == 0, proc.stderr
    blob_id = put(net, "node0", src, "--to", node1.address)
    assert call(net, "node0", "blob_status", blob_id=blob_id)["encrypted"]

    mine = files / "secret.node1"
    proc = cli("blob", "get", blob_id, "--home", str(node1.home), "--out", str(mine))
    assert proc.returncode == 0, proc.stderr
    assert same_bytes(src, mine)

    theirs = files / "secret.node2"
    proc = cli("blob", "get", blob_id, "--home", str(net.spec("node2").home), "--out",
               str(theirs))
    assert proc.returncode == 1
    assert f"encrypted to {node1.address}" in proc.stderr
    assert net.spec("node2").address in proc.stderr and "not a recipient" in proc.stderr
    assert not theirs.exists()
    # node2 still fetched and verified the ciphertext: it can serve it to others
    assert call(net, "node2", "blob_status", blob_id=blob_id)["complete"]


def start_peer(net: Testnet, mode: str, src: Path, store: Path
               ) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "e2e" / "blob_peer.py"), mode, str(src), str(store),
         net.spec("node2").p2p_addr],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise AssertionError(f"blob_peer {mode} did not start: {proc.communicate(timeout=10)}")
    return proc, json.loads(line)


def stop_peer(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def fetch(net: Testnet, name: str, blob_id: str) -> dict[str, Any]:
    return call(net, name, "blob_fetch", blob_id=blob_id)


def wait_fetched(net: Testnet, name: str, blob_id: str, timeout: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        # the fetch's own state, not the store's: the store holds every chunk a moment
        # before the fetch has counted the last one
        status = call(net, name, "blob_status", blob_id=blob_id)
        state = (status["fetch"] or {}).get("state")
        assert state != "failed", status
        return status if status["complete"] and state == "done" else None
    return wait_until(done, timeout=timeout, interval=0.1, what=f"{name} to fetch {blob_id}")


def test_lying_provider_is_penalised_and_the_blob_completes(net: Testnet, files: Path) -> None:
    src = random_file(files / "lied.bin", 40 * MB)  # 5 ranges of 8 chunks: work for both
    blob_id = put(net, "node0", src)
    liar, info = start_peer(net, "liar", src, files / "liar-store")
    try:
        assert info["blob_id"] == blob_id
        fetch(net, "node2", blob_id)
        status = wait_fetched(net, "node2", blob_id)
    finally:
        stop_peer(liar)
    progress = status["fetch"]
    assert info["peer_id"] in progress["providers"], progress
    assert info["peer_id"] in progress["penalised"], progress
    assert "hash" in progress["penalised"][info["peer_id"]]
    assert progress["chunks_from"].get(info["peer_id"], 0) == 0
    assert sum(progress["chunks_from"].values()) == status["chunks"]
    assert info["peer_id"] in call(net, "node2", "blob_list")["penalised"]
    out = files / "lied.out"
    proc = cli("blob", "get", blob_id, "--home", str(net.spec("node2").home), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert same_bytes(src, out)


def test_provider_killed_mid_transfer_the_rest_comes_from_another(net: Testnet,
                                                                  files: Path) -> None:
    src = random_file(files / "killed.bin", 24 * MB)
    blob_id = put(net, "node0", src)
    slow, info = start_peer(net, "slow", src, files / "slow-store")
    try:
        fetch(net, "node2", blob_id)

        def slow_served_some() -> bool:
            progress = call(net, "node2", "blob_status", blob_id=blob_id)["fetch"] or {}
            return progress.get("chunks_from", {}).get(info["peer_id"], 0) >= 2
        wait_until(slow_served_some, timeout=60, interval=0.05, what="the slow peer to serve")
        slow.send_signal(signal.SIGKILL)
        status = wait_fetched(net, "node2", blob_id)
    finally:
        stop_peer(slow)
    progress = status["fetch"]
    served = progress["chunks_from"]
    assert served[info["peer_id"]] >= 2 and served[net.spec("node0").peer_id] >= 1
    # every chunk was verified and written exactly once: nothing fetched twice
    assert sum(served.values()) == status["chunks"] == 24, progress
    assert progress["bytes_fetched"] == 24 * MB
    out = files / "killed.out"
    proc = cli("blob", "get", blob_id, "--home", str(net.spec("node2").home), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert same_bytes(src, out)


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_200_mb_fetch_keeps_the_fetching_node_memory_bounded(net: Testnet, files: Path) -> None:
    src = random_file(files / "big.bin", 200 * MB)
    blob_id = put(net, "node0", src)
    src.unlink()  # the disk holds two more copies soon
    pid = net.procs["node1"].proc.pid
    before = rss_kb(pid, "VmRSS")
    fetch(net, "node1", blob_id)
    wait_fetched(net, "node1", blob_id, timeout=240)
    growth_mb = (rss_kb(pid, "VmHWM") - before) / 1024
    assert growth_mb < 100, f"node1 grew by {growth_mb:.0f} MB fetching 200 MB"


def test_bad_input_gets_clear_errors_and_the_nodes_keep_running(net: Testnet,
                                                                files: Path) -> None:
    home2 = str(net.spec("node2").home)
    unknown = "ab" * 32
    proc = cli("blob", "get", unknown, "--home", home2, "--out", str(files / "x"))
    assert proc.returncode == 1 and "no connected peer" in proc.stderr.lower(), proc.stderr
    proc = cli("blob", "get", "xyz", "--home", home2, "--out", str(files / "x"))
    assert proc.returncode == 2 and "64 hex" in proc.stderr
    proc = cli("blob", "put", str(files / "does-not-exist"), "--home", home2)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    with net.client("node2") as c:
        from node.rpc_client import RpcError

        with pytest.raises(RpcError) as err:
            c.call("blob_fetch", {"blob_id": "00"})
        assert err.value.code == -32602
        with pytest.raises(RpcError) as err:
            c.call("blob_status", {"blob_id": "cd" * 32})
        assert err.value.code == -32001
    for name in NODES:
        assert call(net, name, "health") == {}


def test_blobs_the_chain_references_are_replicated(net: Testnet, files: Path) -> None:
    src = random_file(files / "weights.bin", 5 * MB)
    blob_id = put(net, "node0", src)
    for name in ("node1", "node2"):
        with pytest.raises(Exception, match="not in this node's store"):
            call(net, name, "blob_status", blob_id=blob_id)
    proc = cli("tx", "register-model", "--home", str(net.spec("node0").home), "--model-id",
               "replicated", "--weights-hash", "cd" * 32, "--blob-id", blob_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # replication = 3 with two other storage peers: both fetch and pin it by themselves

    def replicated() -> bool:
        for name in ("node1", "node2"):
            try:
                status = call(net, name, "blob_status", blob_id=blob_id)
            except Exception:  # noqa: BLE001 - not known there yet
                return False
            if not (status["complete"] and status["pinned"] and status["referenced"]):
                return False
        return True
    wait_until(replicated, timeout=60, what="the referenced blob to reach node1 and node2")
    assert blob_id in call(net, "node1", "blob_list")["referenced"]


def test_full_quota_is_a_clear_error_for_put_and_for_fetch(net: Testnet, files: Path) -> None:
    spec = net.spec("node3")
    config = spec.home / "config" / "config.toml"
    config.write_text(config.read_text().replace("quota_mb = 10240", "quota_mb = 2"))
    src = random_file(files / "four.bin", 4 * MB)
    proc = cli("blob", "put", str(src), "--home", str(spec.home))
    assert proc.returncode == 1 and "quota" in proc.stderr.lower(), proc.stderr
    blob_id = put(net, "node0", src)
    net.start_all(["node3"], timeout=90)
    wait_until(lambda: call(net, "node3", "blob_providers", blob_id=blob_id)["providers"],
               timeout=30, what="node3 to see a provider")
    fetch(net, "node3", blob_id)

    def failed() -> dict[str, Any] | None:
        progress = call(net, "node3", "blob_status", blob_id=blob_id)["fetch"] or {}
        return progress if progress.get("state") == "failed" else None
    progress = wait_until(failed, timeout=60, what="the over-quota fetch to fail")
    assert "quota" in progress["error"].lower()
    assert call(net, "node3", "health") == {}
    assert call(net, "node3", "blob_list")["used_bytes"] <= 2 * MB
