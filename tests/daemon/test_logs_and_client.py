"""node.logs (plain/JSON, idempotent setup) and node.rpc_client (typed errors, polling)."""

from __future__ import annotations

import io
import json
import logging
import socket

import httpx
import pytest

from node.config import LogSection
from node.logs import setup_logging
from node.rpc_client import RpcClient, RpcError, RpcUnavailable, normalize_url, wait_until


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_carry_level_node_and_message() -> None:
    buf = io.StringIO()
    setup_logging(LogSection(level="info", format="json"), "n7", stream=buf)
    logging.getLogger("node.test").info("hello %s", "world")
    logging.getLogger("node.test").debug("not shown at info")
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["level"] == "info" and lines[0]["node"] == "n7"
    assert lines[0]["msg"] == "hello world" and lines[0]["logger"] == "node.test"


def test_plain_logs_and_setup_is_idempotent() -> None:
    buf = io.StringIO()
    setup_logging(LogSection(level="debug", format="plain"), "a", stream=buf)
    setup_logging(LogSection(level="warning", format="plain"), "b", stream=buf)
    logging.getLogger("x").warning("once")
    logging.getLogger("x").info("filtered")
    out = buf.getvalue().splitlines()
    assert len(out) == 1 and " b x: once" in out[0] and "WARNING" in out[0]


def _client(handler) -> RpcClient:
    c = RpcClient("127.0.0.1:1")
    c._http = httpx.Client(transport=httpx.MockTransport(handler))
    return c


def test_client_returns_result_and_raises_typed_errors() -> None:
    def ok(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["jsonrpc"] == "2.0" and body["method"] == "status"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": {"a": 1}})

    assert _client(ok).call("status") == {"a": 1}

    def err(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1,
                                         "error": {"code": -32001, "message": "nope"}})

    with pytest.raises(RpcError) as info:
        _client(err).call("account", {"address": "00"})
    assert info.value.code == -32001 and info.value.message == "nope"

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    with pytest.raises(RpcUnavailable):
        _client(html).call("status")
    assert not _client(html).healthy()


def test_client_on_a_closed_port_is_unavailable() -> None:
    with socket.socket() as s:  # bound but not listening: refused, and nobody else's port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with RpcClient(f"127.0.0.1:{port}", timeout=2) as c:
            with pytest.raises(RpcUnavailable):
                c.status()
            assert not c.healthy()


def test_normalize_url_and_wait_until() -> None:
    assert normalize_url("127.0.0.1:5") == "http://127.0.0.1:5/"
    assert normalize_url("https://x/") == "https://x/"
    calls = iter([None, 0, RpcUnavailable("down"), 7])

    def pred():
        v = next(calls)
        if isinstance(v, Exception):
            raise v
        return v

    assert wait_until(pred, timeout=5, interval=0.001) == 7
    with pytest.raises(TimeoutError, match="thing"):
        wait_until(lambda: None, timeout=0.05, interval=0.01, what="thing")
