"""node.testnet and ``oml-node testnet init|start``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import load_config
from node.genesis import Genesis
from node.keys import AccountKey, NodeKey
from node.listenfile import read_listen_file
from node.testnet import AUTO_PORTS, Testnet, TestnetError, init_testnet, load_testnet

REPO = Path(__file__).resolve().parents[2]


def test_init_writes_homes_sharing_one_genesis(tmp_path: Path) -> None:
    specs = init_testnet(tmp_path / "net", validators=3, non_validators=2, base_port=31000,
                         chain_id="tn-1")
    assert [s.name for s in specs] == [f"node{i}" for i in range(5)]
    assert [s.validator for s in specs] == [True, True, True, False, False]
    files = {(s.home / "config" / "genesis.json").read_bytes() for s in specs}
    assert len(files) == 1
    genesis = Genesis.load(specs[0].home / "config" / "genesis.json")
    assert genesis.chain_id == "tn-1"
    accounts = {a["address"] for a in genesis.app_state["accounts"]}
    assert accounts == {s.address for s in specs}  # every node's account is funded
    vals = {v.address.hex() for v in genesis.validators}
    assert vals == {s.address for s in specs if s.validator}
    ports = [p for s in specs for p in (s.p2p_port, s.rpc_port, s.metrics_port)]
    assert len(set(ports)) == len(ports)
    for s in specs:
        cfg = load_config(s.home / "config" / "config.toml")
        assert cfg.rpc.laddr == f"127.0.0.1:{s.rpc_port}"
        assert cfg.metrics.laddr == f"127.0.0.1:{s.metrics_port}"
        assert cfg.p2p.listen_addr == f"/ip4/127.0.0.1/tcp/{s.p2p_port}"
        assert cfg.roles.validator == s.validator
        # persistent peers: every other node, with the peer id of its node key
        assert sorted(cfg.p2p.persistent_peers) == sorted(o.p2p_addr for o in specs if o != s)
        assert NodeKey.load(s.home / "config" / "node_key.json").peer_id == s.peer_id
        assert AccountKey.load(s.home / "config" / "priv_validator_key.json").address.hex() \
            == s.address
    assert load_testnet(tmp_path / "net") == specs


def test_init_with_auto_ports_binds_port_0_and_lists_no_peers(tmp_path: Path) -> None:
    specs = init_testnet(tmp_path / "net", validators=2, non_validators=1,
                         base_port=AUTO_PORTS)
    for s in specs:
        assert s.auto_ports and (s.p2p_port, s.rpc_port, s.metrics_port) == (0, 0, 0)
        cfg = load_config(s.home / "config" / "config.toml")
        assert cfg.p2p.listen_addr == "/ip4/127.0.0.1/tcp/0"
        assert cfg.rpc.laddr == "127.0.0.1:0" and cfg.metrics.laddr == "127.0.0.1:0"
        assert cfg.p2p.persistent_peers == []  # the launcher wires them once they listen
    assert load_testnet(tmp_path / "net") == specs


def test_init_refuses_to_overwrite_and_bad_counts(tmp_path: Path) -> None:
    init_testnet(tmp_path / "net", validators=1, base_port=32000)
    with pytest.raises(TestnetError, match="--force"):
        init_testnet(tmp_path / "net", validators=1, base_port=32000)
    init_testnet(tmp_path / "net", validators=2, base_port=32000, force=True)
    assert len(load_testnet(tmp_path / "net")) == 2
    with pytest.raises(TestnetError):
        init_testnet(tmp_path / "x", validators=0)
    with pytest.raises(TestnetError):
        init_testnet(tmp_path / "y", validators=4, base_port=65500)


def test_cli_init_prints_nodes(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["testnet", "init", "--validators", "2",
                                    "--non-validators", "1", "--out", str(tmp_path / "n"),
                                    "--base-port", "33000", "--chain-id", "cli-net"])
    assert res.exit_code == 0, res.output
    assert "node2" in res.output and "full node" in res.output
    assert json.loads((tmp_path / "n" / "testnet.json").read_text())["chain_id"] == "cli-net"
    bad = CliRunner().invoke(main, ["testnet", "init", "--out", str(tmp_path / "m"),
                                    "--chain-id", "bad id!"])
    assert bad.exit_code != 0


@pytest.mark.slow
def test_cli_start_fails_fast_when_a_node_dies_at_startup(tmp_path: Path) -> None:
    out = tmp_path / "net"
    specs = init_testnet(out, validators=2, base_port=AUTO_PORTS)
    (specs[1].home / "config" / "genesis.json").write_text("{not json")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "node", "testnet", "start", str(out),
                           "--timeout", "60"], check=False, capture_output=True, text=True,
                          timeout=90, cwd=REPO)
    assert proc.returncode != 0
    assert "node1 exited" in proc.stderr
    assert time.monotonic() - t0 < 45


@pytest.mark.slow
def test_cli_start_prints_rpc_urls_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "net"
    specs = init_testnet(out, validators=1, base_port=AUTO_PORTS)
    data_dir = specs[0].home / "data"
    proc = subprocess.Popen([sys.executable, "-m", "node", "testnet", "start", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        running = read_listen_file(data_dir)  # the port the node bound, not 0
        assert running is not None and not running.rpc[0].endswith(":0")
        assert f"node0: {running.rpc[0]}\n" in lines, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (specs[0].home / "node.log").read_text()
    assert "received SIGTERM" in log and "stopped" in log
    assert read_listen_file(data_dir) is None  # a stopped node advertises nothing


def test_operator_guide_documents_every_config_key() -> None:
    import dataclasses

    from node.config import Config

    guide = (REPO / "docs" / "operator.md").read_text()

    def check(table: object, where: str) -> None:
        assert f"### [{where}]" in guide, where
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            if dataclasses.is_dataclass(value):
                check(value, f"{where}.{f.name}")
            else:
                assert f"`{f.name}`" in guide, f"[{where}] {f.name} is not documented"

    for section in dataclasses.fields(Config):
        check(getattr(Config(), section.name), section.name)


@pytest.mark.slow
def test_second_process_on_one_home_and_busy_port_exit_with_status_1(tmp_path: Path) -> None:
    out = tmp_path / "net"
    specs = init_testnet(out, validators=1, base_port=AUTO_PORTS)
    with Testnet(out) as net:
        net.start_all(timeout=60)
        again = subprocess.run([sys.executable, "-m", "node", "start", "--home",
                                str(specs[0].home)], check=False, capture_output=True, text=True,
                               timeout=60, cwd=REPO)
        assert again.returncode == 1
        assert "in use by another oml-node process" in again.stderr
        # the refused process did not touch the running node's listen file
        running = read_listen_file(specs[0].home / "data", pid=net.procs["node0"].proc.pid)
        assert running is not None and running.rpc[0] == net.spec("node0").rpc_url
        # another home whose RPC port is the one the running node bound
        other = init_testnet(tmp_path / "other", validators=1, base_port=AUTO_PORTS)[0]
        cfg = (other.home / "config" / "config.toml").read_text()
        busy_port = net.spec("node0").rpc_port
        assert busy_port != 0
        (other.home / "config" / "config.toml").write_text(
            cfg.replace('laddr = "127.0.0.1:0"', f'laddr = "127.0.0.1:{busy_port}"', 1))
        assert load_config(other.home / "config" / "config.toml").rpc.laddr \
            == f"127.0.0.1:{busy_port}"
        busy = subprocess.run([sys.executable, "-m", "node", "start", "--home",
                               str(other.home)], check=False, capture_output=True, text=True,
                              timeout=60, cwd=REPO)
        assert busy.returncode == 1 and "cannot start" in busy.stderr
        assert net.procs["node0"].alive
