"""`oml-node init` and `oml-node keys`, run as the real console entry point."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from node.genesis import Genesis, GenesisError
from node.home import Home
from node.keys import AccountKey, KeyFileError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True,
                          text=True, timeout=60)


def test_init_writes_home_with_private_keys(tmp_path):
    home = tmp_path / "n0"
    r = run_cli("init", "--home", str(home), "--moniker", "alpha", "--chain-id", "test-1")
    assert r.returncode == 0, r.stderr
    cfg = home / "config"
    for name in ("node_key.json", "priv_validator_key.json"):
        assert stat.S_IMODE((cfg / name).stat().st_mode) == 0o600
    h = Home(home)
    config = h.config()
    assert config.node.moniker == "alpha"
    genesis = Genesis.load(h.genesis_file(config))
    key = h.account_key(config)
    assert genesis.chain_id == "test-1"
    assert [v.pub_key for v in genesis.validators] == [key.public_key]
    assert genesis.app_state["accounts"][0]["address"] == key.address.hex()
    assert genesis.app_state["accounts"][0]["balance"] > 0
    assert key.address.hex() in r.stdout

    show = run_cli("keys", "show", "--home", str(home), "--json")
    assert show.returncode == 0, show.stderr
    info = json.loads(show.stdout)
    assert info == {"address": key.address.hex(), "pub_key": key.public_key.hex(),
                    "peer_id": h.node_key(config).peer_id}


def test_init_refuses_existing_home_unless_forced(tmp_path):
    home = tmp_path / "n0"
    assert run_cli("init", "--home", str(home)).returncode == 0
    before = Home(home).account_key().address
    again = run_cli("init", "--home", str(home))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert Home(home).account_key().address == before  # untouched
    forced = run_cli("init", "--home", str(home), "--force")
    assert forced.returncode == 0
    assert Home(home).account_key().address != before


def test_init_rejects_bad_chain_id(tmp_path):
    r = run_cli("init", "--home", str(tmp_path / "x"), "--chain-id", "bad id!")
    assert r.returncode == 2
    assert "chain-id" in r.stderr
    assert not (tmp_path / "x").exists()


def test_keys_new_and_show_errors(tmp_path):
    out = tmp_path / "k.json"
    r = run_cli("keys", "new", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = AccountKey.load(out)
    assert key.address.hex() in r.stdout
    assert run_cli("keys", "new", "--out", str(out)).returncode == 1  # no clobbering
    assert AccountKey.load(out) == key
    missing = run_cli("keys", "show", "--home", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert "not an initialised home" in missing.stderr


@pytest.mark.parametrize("content,match", [
    ("not json", "not JSON"), ("[]", "JSON object"), ('{"priv_key": "zz"}', "not hex"),
    ('{"priv_key": "00"}', "32 bytes"), ("{}", "missing field"),
])
def test_malformed_key_files(tmp_path, content, match):
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(KeyFileError, match=match):
        AccountKey.load(path)


def test_genesis_validation(tmp_path):
    good = {"chain_id": "c", "genesis_time_ms": 0,
            "validators": [{"name": "v", "pub_key": "11" * 32, "power": 1}], "app_state": {}}
    assert Genesis.from_json(good).validators[0].power == 1
    for change, match in [({"chain_id": "bad id"}, "chain_id"), ({"validators": []}, "non-empty"),
                          ({"genesis_time_ms": -1}, "genesis_time_ms"),
                          ({"validators": [{"pub_key": "11", "power": 1}]}, "32 bytes"),
                          ({"validators": [{"pub_key": "11" * 32, "power": 0}]}, "positive"),
                          ({"validators": [good["validators"][0]] * 2}, "twice")]:
        with pytest.raises(GenesisError, match=match):
            Genesis.from_json({**good, **change})
    path = tmp_path / "g.json"
    path.write_text("{")
    with pytest.raises(GenesisError, match="invalid JSON"):
        Genesis.load(path)
    Genesis.from_json(good).save(path)
    assert Genesis.load(path) == Genesis.from_json(good)


def test_help_is_fast_and_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    assert "init" in r.stdout and "keys" in r.stdout
    code = ("import sys; from node.cli import main; "
            "sys.exit(1 if {'torch','libp2p','transformers'} & set(sys.modules) else 0)")
    heavy = subprocess.run([sys.executable, "-c", code]).returncode
    assert heavy == 0, "CLI import pulls heavy deps"
