"""config.toml: defaults, documentation, strict parsing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib

import pytest
import tomli_w

from node.config import Config, ConfigError, config_from_dict, load_config, render_config


def test_rendered_defaults_parse_back_to_defaults():
    text = render_config(Config())
    assert config_from_dict(tomllib.loads(text)) == Config()


def test_every_field_is_documented_in_the_file():
    text = render_config(Config())

    def check(table: object, where: str) -> None:
        assert f"# {type(table).__doc__.strip().splitlines()[0]}\n[{where}]" in text
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            if dataclasses.is_dataclass(value):  # a nested table: documented by its class
                check(value, f"{where}.{f.name}")
                continue
            assert f.metadata.get("doc"), f"{where}.{f.name} has no doc"
            assert f"# {f.metadata['doc']}" in text

    for section in dataclasses.fields(Config):
        check(getattr(Config(), section.name), section.name)


def test_partial_file_keeps_defaults():
    config = config_from_dict({"rpc": {"laddr": "127.0.0.1:1234"}})
    assert config.rpc.laddr == "127.0.0.1:1234"
    assert config.rpc.max_body_bytes == Config().rpc.max_body_bytes
    assert config.p2p == Config().p2p


@pytest.mark.parametrize(
    "data,match",
    [
        ({"nope": {}}, "unknown config section"),
        ({"rpc": {"lador": "x"}}, "unknown config key"),
        ({"rpc": {"max_body_bytes": "big"}}, "expected an integer"),
        ({"rpc": {"max_body_bytes": -1}}, "must not be negative"),
        ({"metrics": {"enabled": 1}}, "true/false"),
        ({"p2p": {"persistent_peers": "a"}}, "list of str"),
        ({"log": {"level": "loud"}}, "must be one of"),
        ({"rpc": 3}, "must be a table"),
    ],
)
def test_bad_config_rejected_with_clear_error(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rpc\nx=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)


def test_role_sections_are_nested_tables():
    text = render_config(Config())
    assert "[roles.storage]" in text and "[roles.omlizer]" in text
    config = config_from_dict({"roles": {"validator": False,
                                         "storage": {"enabled": True, "quota_mb": 7}}})
    assert config.roles.storage.enabled and config.roles.storage.quota_mb == 7
    assert config.roles.storage.replication == Config().roles.storage.replication
    assert not config.roles.validator and not config.roles.omlizer.enabled


@pytest.mark.parametrize(
    "data,match",
    [
        ({"roles": {"storage": True}}, r"\[roles\] storage: expected a table \[roles.storage\]"),
        ({"roles": {"storage": {"enable": True}}}, r"unknown config key \[roles.storage\] enable"),
        ({"roles": {"storage": {"quota_mb": "lots"}}}, r"\[roles.storage\] quota_mb"),
        ({"roles": {"storage": {"max_providers": 0}}}, "must be between 1 and 64"),
        ({"roles": {"host_gateway": True}}, r"unknown config key \[roles\] host_gateway"),
    ],
)
def test_bad_role_tables_rejected(data, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_with_changes_reaches_nested_tables():
    from node.config import with_changes

    config = with_changes(Config(), roles={"storage": {"enabled": True}})
    assert config.roles.storage.enabled
    assert config.roles.storage.quota_mb == Config().roles.storage.quota_mb
    assert config.roles.validator


PEER = "/ip4/127.0.0.1/tcp/26656/p2p/12D3KooWGzh5LbSsNcN1pvnCgUMmFeUW4LWcDDq5qcYm7DH6ZdPS"


@pytest.mark.parametrize(
    "data,message",
    [
        ({"p2p": {"listen_addr": "127.0.0.1:26656"}},
         "[p2p] listen_addr: not a multiaddr: '127.0.0.1:26656'"),
        ({"p2p": {"listen_addr": "/ip4/127.0.0.1/udp/1"}},
         "[p2p] listen_addr: expected /ip4/HOST/tcp/PORT, got '/ip4/127.0.0.1/udp/1'"),
        ({"p2p": {"listen_addr": "/ip4/300.0.0.1/tcp/1"}}, "[p2p] listen_addr: not a multiaddr"),
        ({"p2p": {"persistent_peers": [PEER, "/ip4/127.0.0.1/tcp/1"]}},
         "[p2p] persistent_peers[1]: must end in /p2p/PEER_ID: '/ip4/127.0.0.1/tcp/1'"),
        ({"p2p": {"persistent_peers": ["/ip4/127.0.0.1/tcp/1/p2p/nope"]}},
         "[p2p] persistent_peers[0]: not a multiaddr"),
        ({"p2p": {"msg_id": "sha1"}}, "[p2p] msg_id: must be one of"),
        ({"rpc": {"laddr": "localhost"}}, "[rpc] laddr: expected HOST:PORT, got 'localhost'"),
        ({"rpc": {"laddr": "127.0.0.1:70000"}}, "[rpc] laddr: port must be a number"),
        ({"rpc": {"laddr": "tcp://127.0.0.1:1"}}, "[rpc] laddr: host must be"),
        ({"metrics": {"laddr": "::1:9000"}}, "[metrics] laddr: host must be"),
        ({"metrics": {"laddr": "[::1:9000"}}, "[metrics] laddr: expected [IPv6]:PORT"),
        ({"metrics": {"laddr": "[1.2.3.4]:9000"}}, "[metrics] laddr: expected [IPv6]:PORT"),
    ],
)
def test_bad_addresses_name_the_setting_in_one_line(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    text = str(info.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize(
    "data",
    [
        {"p2p": {"listen_addr": "/ip6/::1/tcp/0", "persistent_peers": [PEER]}},
        {"p2p": {"listen_addr": "/dns4/node0.example/tcp/26656"}},
        {"rpc": {"laddr": "[::1]:0"}, "metrics": {"laddr": "localhost:9100"}},
        {"rpc": {"laddr": "0.0.0.0:26657"}, "p2p": {"msg_id": "peer_seqno"}},
    ],
)
def test_good_addresses_accepted(data):
    config_from_dict(data)


def _start_with(tmp_path, section: str, key: str, value: str) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "n0"
    init = subprocess.run([sys.executable, "-m", "node", "init", "--home", str(home)],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    config_file = home / "config" / "config.toml"
    data = tomllib.loads(config_file.read_text())
    data[section][key] = value
    config_file.write_text(tomli_w.dumps(data))
    return subprocess.run([sys.executable, "-m", "node", "start", "--home", str(home)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        ("p2p", "listen_addr", "/ip4/127.0.0.1/tcp/abc",
         "config error: [p2p] listen_addr: not a multiaddr: '/ip4/127.0.0.1/tcp/abc'"),
        ("rpc", "laddr", "127.0.0.1", "config error: [rpc] laddr: expected HOST:PORT"),
    ],
)
def test_start_prints_one_line_and_exits_1(tmp_path, section, key, value, expected):
    r = _start_with(tmp_path, section, key, value)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_prover_role_table_is_checked() -> None:
    cfg = config_from_dict({"roles": {"prover": {
        "enabled": True, "endpoints": ["http://10.0.0.5:8000/v1"], "api": "chat",
        "samples_per_key": 5, "jitter_pct": 0}}})
    assert cfg.roles.prover.endpoints == ["http://10.0.0.5:8000/v1"]
    assert cfg.roles.prover.api == "chat" and cfg.roles.prover.require_reference is True
    for bad in ({"api": "embeddings"}, {"jitter_pct": 101}, {"samples_per_key": 0},
                {"max_concurrent": 0}, {"endpoints": "http://x/v1"}, {"probe_rate": 3}):
        with pytest.raises(ConfigError):
            config_from_dict({"roles": {"prover": bad}})
