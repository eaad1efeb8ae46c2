"""config.toml: defaults, documentation, strict parsing."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from node.config import Config, ConfigError, config_from_dict, load_config, render_config


def test_rendered_defaults_parse_back_to_defaults():
    text = render_config(Config())
    assert config_from_dict(tomllib.loads(text)) == Config()


def test_every_field_is_documented_in_the_file():
    text = render_config(Config())
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(type(getattr(Config(), section.name))):
            assert f.metadata.get("doc"), f"{section.name}.{f.name} has no doc"
            assert f"# {f.metadata['doc']}" in text


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
