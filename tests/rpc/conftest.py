"""A real RPC server (hypercorn + starlette) on a free 127.0.0.1 port over the fake backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from node.config import RPCSection
from node.metrics import NodeMetrics
from node.rpc import EventBus, build_methods, serve_rpc

from .fake_backend import FakeBackend


@dataclass
class Harness:
    url: str
    backend: FakeBackend
    events: EventBus
    client: httpx.AsyncClient
    shutdown: trio.Event
    metrics: NodeMetrics

    async def call(self, method: str, params: Any = None, *, id_: Any = 1) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
        if params is not None:
            body["params"] = params
        resp = await self.client.post("/", json=body)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["jsonrpc"] == "2.0" and out["id"] == id_
        return out

    async def result(self, method: str, params: Any = None) -> Any:
        out = await self.call(method, params)
        assert "error" not in out, out
        return out["result"]

    async def post(self, content: bytes) -> httpx.Response:
        return await self.client.post("/", content=content,
                                      headers={"content-type": "application/json"})


TEST_CONFIG = RPCSection(laddr="127.0.0.1:0", max_body_bytes=20_000, max_batch=5,
                         timeout_broadcast_tx_commit_ms=1000)


@pytest.fixture
async def rpc(nursery: trio.Nursery) -> AsyncIterator[Harness]:
    events = EventBus()
    backend = FakeBackend(events)
    shutdown = trio.Event()
    metrics = NodeMetrics(method_names=tuple(build_methods()))
    with trio.fail_after(10):
        urls = await nursery.start(partial(serve_rpc, backend, events, TEST_CONFIG,
                                           observer=metrics.observe_rpc,
                                           shutdown_trigger=shutdown.wait))
    async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
        yield Harness(url=urls[0], backend=backend, events=events, client=client,
                      shutdown=shutdown, metrics=metrics)
    shutdown.set()
