"""``[roles.host]``: an enabled gateway names its model and exactly one engine; bad values
fail at load naming the key; the gateway URL travels in listen.json."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.config import ConfigError, config_from_dict
from node.listenfile import ListenInfo, add_listen_urls, read_listen_file, write_listen_file


def host(**kw) -> dict:
    return {"roles": {"host": {"enabled": True, "model_id": "m", **kw}}}


def test_an_enabled_gateway_needs_a_model_and_one_engine() -> None:
    cfg = config_from_dict(host(model_dir="pkg"))
    assert cfg.roles.host.model_dir == "pkg" and cfg.roles.host.batch_window_ms == 0
    config_from_dict(host(upstream_url="http://127.0.0.1:8000/v1"))
    config_from_dict({"roles": {"host": {"enabled": False}}})  # disabled: nothing required


@pytest.mark.parametrize("body, needle", [
    (host(), "exactly one of model_dir"),
    (host(model_dir="a", upstream_url="http://x:1"), "exactly one of model_dir"),
    ({"roles": {"host": {"enabled": True, "model_dir": "a"}}}, "model_id"),
    (host(model_id="x" * 65, model_dir="a"), "model_id"),
    (host(upstream_url="ftp://x"), "upstream_url"),
    (host(model_dir="a", laddr="nope"), "[roles.host] laddr"),
    (host(model_dir="a", max_new_tokens=0), "max_new_tokens"),
    (host(model_dir="a", batch_window_ms=5000), "batch_window_ms"),
    (host(model_dir="a", fund_budget=10), "fund_amount"),
    (host(model_dir="a", api_keys="sk-1"), "api_keys"),
    (host(model_dir="a", rate_limit_rpm=-1), "rate_limit_rpm"),
    (host(model_dir="a", colour="blue"), "colour"),
])
def test_bad_host_config_is_refused_naming_the_key(body, needle) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(body)
    assert needle in str(info.value)


def test_gateway_url_added_to_this_processes_listen_file(tmp_path: Path) -> None:
    assert not add_listen_urls(tmp_path, gateway=("http://127.0.0.1:1/v1",))  # no file yet
    info = ListenInfo(pid=os.getpid(), peer_id="12D3KooWx", p2p=("/ip4/127.0.0.1/tcp/1",),
                      rpc=("http://127.0.0.1:2",))
    write_listen_file(tmp_path, info)
    assert read_listen_file(tmp_path).gateway == ()
    assert add_listen_urls(tmp_path, gateway=("http://127.0.0.1:3/v1",))
    again = read_listen_file(tmp_path)
    assert again.gateway == ("http://127.0.0.1:3/v1",) and again.rpc == info.rpc
