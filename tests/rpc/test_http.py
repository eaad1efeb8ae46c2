"""JSON-RPC over HTTP against a real server: methods, errors, batches, notifications, limits."""

from __future__ import annotations

import json

import httpx
import trio

from node.rpc import NodeUnavailable, build_methods

from .conftest import TEST_CONFIG, Harness
from .fake_backend import VAL_ADDR, txhash


async def assert_alive(rpc: Harness) -> None:
    """The node keeps answering after a bad request."""
    assert await rpc.result("health") == {}


async def test_status_shape(rpc: Harness) -> None:
    rpc.backend.commit()
    st = await rpc.result("status")
    assert st["node_info"]["network"] == "test-chain"
    assert st["node_info"]["moniker"] == "fake"
    si = st["sync_info"]
    assert si["latest_block_height"] == 1
    assert si["latest_block_hash"] == rpc.backend.blocks[0].hash.hex()
    assert si["latest_app_hash"] == "01" * 32
    assert si["catching_up"] is False
    assert si["latest_block_time"] == "2023-11-14T22:13:21.000Z"
    assert st["validator_info"] == {"address": VAL_ADDR.hex(), "pub_key": bytes(range(32)).hex(),
                                    "voting_power": 10, "proposer_priority": 0}


async def test_query_methods_by_name_and_position(rpc: Harness) -> None:
    for _ in range(3):
        rpc.backend.pending.append(b"ok-x%d" % len(rpc.backend.blocks))
        rpc.backend.commit()
    blk = await rpc.result("block", {"height": 2})
    assert blk["block_id"]["hash"] == rpc.backend.blocks[1].hash.hex()
    assert blk["block"]["data"]["txs"] == [b"ok-x1".hex()]
    assert (await rpc.result("block", [2])) == blk
    assert (await rpc.result("block", {"height": "2"})) == blk  # CometBFT-style string height
    assert (await rpc.result("block"))["block"]["height"] == 3
    chain = await rpc.result("blockchain", {"minHeight": 1, "maxHeight": 2})
    assert chain["last_height"] == 3
    assert [m["height"] for m in chain["block_metas"]] == [2, 1]
    assert [m["height"] for m in (await rpc.result("blockchain"))["block_metas"]] == [3, 2, 1]
    tx = await rpc.result("tx", {"hash": txhash(b"ok-x0").hex()})
    assert tx["height"] == 1 and tx["index"] == 0 and tx["tx"] == b"ok-x0".hex()
    assert tx["tx_result"]["code"] == 0
    acct = await rpc.result("account", {"address": "0x" + VAL_ADDR.hex().upper()})
    assert acct["balance"] == 1000
    assert (await rpc.result("model", ["aa"]))["price_per_query"] == 5
    assert (await rpc.result("host", {"model_id": "aa", "host": "11" * 20}))["host"] == "11" * 20
    assert (await rpc.result("claim", {"claim_id": 3})) == {"claim_id": 3}
    assert (await rpc.result("params"))["slash_fraction_bp"] == 5000
    assert (await rpc.result("genesis"))["chain_id"] == "test-chain"
    vals = await rpc.result("validators")
    assert vals["count"] == 1 and vals["validators"][0]["voting_power"] == 10
    ni = await rpc.result("net_info")
    assert ni["n_peers"] == 1 and ni["peers"][0]["is_outbound"] is True


async def test_not_found_is_application_error(rpc: Harness) -> None:
    out = await rpc.call("account", {"address": "22" * 20})
    assert out["error"]["code"] == -32001 and "not found" in out["error"]["message"]
    out = await rpc.call("block")  # no blocks yet
    assert out["error"]["code"] == -32001
    rpc.backend.commit()
    out = await rpc.call("block", {"height": 99})
    assert out["error"]["code"] == -32602 and "above the latest" in out["error"]["message"]
    out = await rpc.call("tx", {"hash": "00" * 32})
    assert out["error"]["code"] == -32001
    out = await rpc.call("claim", {"claim_id": 4})
    assert out["error"]["code"] == -32001
    await assert_alive(rpc)


async def test_parse_error(rpc: Harness) -> None:
    for body in (b"{not json", b"\xff\xfe", b"", b'{"jsonrpc": "2.0", "id": 1, "method": NaN}',
                 b"[" * 100_00):
        resp = await rpc.post(body)
        assert resp.status_code == 200
        out = resp.json()
        assert out["error"]["code"] == -32700 and out["id"] is None
    await assert_alive(rpc)


async def test_invalid_requests(rpc: Harness) -> None:
    cases = [
        {"id": 1, "method": "health"},                                 # no jsonrpc
        {"jsonrpc": "1.0", "id": 1, "method": "health"},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
        {"jsonrpc": "2.0", "id": 1, "method": "health", "params": "x"},
        {"jsonrpc": "2.0", "id": {"a": 1}, "method": "health"},
    ]
    for case in cases:
        out = (await rpc.post(json.dumps(case).encode())).json()
        assert out["error"]["code"] == -32600, case
    assert (await rpc.post(b"5")).json()["error"]["code"] == -32600
    assert (await rpc.post(b'"str"')).json()["error"]["code"] == -32600
    assert (await rpc.post(b"[]")).json()["error"]["code"] == -32600
    await assert_alive(rpc)


async def test_unknown_method(rpc: Harness) -> None:
    out = await rpc.call("no_such_method")
    assert out["error"]["code"] == -32601
    out = await rpc.call("subscribe", {"query": "tm.event='NewBlock'"})
    assert out["error"]["code"] == -32601 and "websocket" in out["error"]["message"]
    await assert_alive(rpc)


async def test_invalid_params(rpc: Harness) -> None:
    bad = [
        ("block", {"height": "abc"}), ("block", {"height": 0}), ("block", {"height": True}),
        ("block", {"height": 1.5}), ("block", [1, 2]), ("block", {"heigth": 1}),
        ("account", {}), ("account", {"address": "zz"}), ("account", {"address": "11" * 19}),
        ("account", {"address": 5}), ("tx", {"hash": "abc"}), ("claim", {"claim_id": -1}),
        ("broadcast_tx_sync", {"tx": ""}), ("broadcast_tx_sync", {"tx": ["ok"]}),
        ("blockchain", {"minHeight": 5, "maxHeight": 2}),
    ]
    for method, params in bad:
        out = await rpc.call(method, params)
        assert out["error"]["code"] == -32602, (method, params, out)
        assert out["error"]["message"]
    await assert_alive(rpc)


async def test_internal_error_hides_details_and_node_survives(rpc: Harness) -> None:
    rpc.backend.broken = True
    out = await rpc.call("status")
    assert out["error"] == {"code": -32603, "message": "internal error"}
    rpc.backend.broken = False
    assert (await rpc.result("status"))["node_info"]["moniker"] == "fake"


async def test_batch_mixed(rpc: Harness) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "health"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"jsonrpc": "2.0", "method": "health"},                           # notification
        {"jsonrpc": "2.0", "id": 3, "method": "account", "params": {"address": "x"}},
        5,
        ]
    resp = await rpc.post(json.dumps(batch).encode())
    assert resp.status_code == 200
    out = resp.json()
    assert [r.get("id") for r in out] == [1, 2, 3, None]
    assert out[0]["result"] == {}
    assert out[1]["error"]["code"] == -32601
    assert out[2]["error"]["code"] == -32602
    assert out[3]["error"]["code"] == -32600


async def test_batch_over_cap(rpc: Harness) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "health"}
             for i in range(TEST_CONFIG.max_batch + 1)]
    out = (await rpc.post(json.dumps(batch).encode())).json()
    assert isinstance(out, dict) and out["error"]["code"] == -32600
    assert "max_batch" in out["error"]["message"]
    ok = (await rpc.post(json.dumps(batch[:-1]).encode())).json()
    assert len(ok) == TEST_CONFIG.max_batch


async def test_notifications_get_no_response(rpc: Harness) -> None:
    resp = await rpc.post(b'{"jsonrpc": "2.0", "method": "broadcast_tx_sync", '
                          b'"params": {"tx": "' + b"ok-note".hex().encode() + b'"}}')
    assert resp.status_code == 204 and resp.content == b""
    assert rpc.backend.pending == [b"ok-note"]  # it did run
    batch = [{"jsonrpc": "2.0", "method": "health"}, {"jsonrpc": "2.0", "method": "nope"}]
    resp = await rpc.post(json.dumps(batch).encode())
    assert resp.status_code == 204 and resp.content == b""


async def test_oversized_body(rpc: Harness) -> None:
    big = b'{"jsonrpc":"2.0","id":1,"method":"broadcast_tx_sync","params":{"tx":"' + \
        b"00" * TEST_CONFIG.max_body_bytes + b'"}}'
    resp = await rpc.post(big)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == -32600

    async def chunks():  # no content-length: the limit holds while streaming too
        for _ in range(50):
            yield b" " * 1000

    resp = await rpc.client.post("/", content=chunks())
    assert resp.status_code == 413
    assert rpc.backend.pending == []
    await assert_alive(rpc)


async def test_broadcast_tx_sync(rpc: Harness) -> None:
    res = await rpc.result("broadcast_tx_sync", {"tx": b"ok-1".hex()})
    assert res == {"code": 0, "log": "", "codespace": "", "hash": txhash(b"ok-1").hex()}
    res = await rpc.result("broadcast_tx_sync", [b"bad".hex()])
    assert res["code"] == 7 and res["log"] == "bad signature"
    res = await rpc.result("broadcast_tx_sync", {"tx": b"ok-1".hex()})
    assert res["code"] == 1 and res["codespace"] == "mempool"


async def test_broadcast_tx_commit_waits_for_block(rpc: Harness) -> None:
    tx = b"ok-commit"
    result: dict = {}

    async def send() -> None:
        result.update(await rpc.result("broadcast_tx_commit", {"tx": tx.hex()}))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            while tx not in rpc.backend.pending:
                await trio.sleep(0.01)
            rpc.backend.commit()  # an unrelated block first would also be fine
    assert result["check_tx"]["code"] == 0
    assert result["tx_result"]["code"] == 0 and result["tx_result"]["log"] == "ok"
    assert result["height"] == 1 and result["hash"] == txhash(tx).hex()


async def test_broadcast_tx_commit_committed_immediately(rpc: Harness) -> None:
    """A block committed while broadcast_tx runs (before any wait) is not missed."""
    rpc.backend.auto_commit = True
    with trio.fail_after(5):
        res = await rpc.result("broadcast_tx_commit", {"tx": b"ok-fast".hex()})
    assert res["height"] == 1 and res["tx_result"]["code"] == 0


async def test_broadcast_tx_commit_rejected_returns_at_once(rpc: Harness) -> None:
    with trio.fail_after(2):
        res = await rpc.result("broadcast_tx_commit", {"tx": b"nope".hex()})
    assert res["check_tx"]["code"] == 7 and res["tx_result"] is None and res["height"] == 0


async def test_broadcast_tx_commit_timeout(rpc: Harness) -> None:
    with trio.fail_after(TEST_CONFIG.timeout_broadcast_tx_commit_ms / 1000 + 5):
        out = await rpc.call("broadcast_tx_commit", {"tx": b"ok-never".hex()})
    assert out["error"]["code"] == -32003 and "timed out" in out["error"]["message"]
    assert rpc.events.tx_waiters == 0  # the waiter was released
    await assert_alive(rpc)


async def test_health_and_index_get(rpc: Harness) -> None:
    resp = await rpc.client.get("/health")
    assert resp.status_code == 200 and resp.text == "ok"
    resp = await rpc.client.get("/")
    assert resp.status_code == 200 and "status" in resp.json()["methods"]


async def test_discover_lists_every_method(rpc: Harness) -> None:
    doc = await rpc.result("rpc.discover")
    assert doc["openrpc"].startswith("1.2")
    names = [m["name"] for m in doc["methods"]]
    assert names == sorted(build_methods())
    assert rpc.url in [s["url"] for s in doc["servers"]]
    block = next(m for m in doc["methods"] if m["name"] == "block")
    assert block["params"][0]["name"] == "height" and block["params"][0]["required"] is False
    assert -32001 in [e["code"] for e in block["errors"]]
    for m in doc["methods"]:
        assert m["summary"] and "schema" in m["result"]


async def test_requests_are_counted_in_metrics(rpc: Harness) -> None:
    await rpc.result("health")
    await rpc.call("nope")
    await rpc.post(b"{bad")
    text = rpc.metrics.render().decode()
    assert 'oml_rpc_requests_total{method="health",outcome="ok"} 1.0' in text
    assert 'oml_rpc_requests_total{method="unknown",outcome="error"} 2.0' in text


async def test_server_stops_on_shutdown_trigger() -> None:
    from functools import partial

    from node.rpc import EventBus, serve_rpc

    from .fake_backend import FakeBackend

    events = EventBus()
    stop = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve_rpc, FakeBackend(events), events,
                                               TEST_CONFIG, shutdown_trigger=stop.wait))
            async with httpx.AsyncClient(base_url=urls[0]) as client:
                assert (await client.get("/health")).text == "ok"
            stop.set()  # the nursery can only exit once the server has returned
    async with httpx.AsyncClient(base_url=urls[0]) as client:
        try:
            await client.get("/health")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("server still answering after shutdown")


async def test_unconfirmed_txs(rpc: Harness) -> None:
    rpc.backend.pending += [b"ok-1", b"ok-22", b"ok-333"]
    assert await rpc.result("num_unconfirmed_txs") == {"n_txs": 3, "total": 3, "total_bytes": 15}
    res = await rpc.result("unconfirmed_txs", {"limit": 2})
    assert res == {"n_txs": 2, "total": 3, "total_bytes": 15,
                   "txs": [b"ok-1".hex(), b"ok-22".hex()]}
    assert (await rpc.result("unconfirmed_txs"))["n_txs"] == 3
    assert (await rpc.call("unconfirmed_txs", {"limit": 101}))["error"]["code"] == -32602


async def test_backend_without_mempool_view() -> None:
    from node.rpc import EventBus
    from node.rpc.methods import Context, _genesis, _num_unconfirmed_txs

    from .fake_backend import FakeBackend

    class Minimal(FakeBackend):
        unconfirmed_txs = None  # type: ignore[assignment]
        genesis = None  # type: ignore[assignment]

    events = EventBus()
    ctx = Context(backend=Minimal(events), events=events, config=TEST_CONFIG)
    for handler, word in ((_num_unconfirmed_txs, "mempool"), (_genesis, "genesis")):
        try:
            await handler(ctx)
        except NodeUnavailable as exc:
            assert word in str(exc)
        else:
            raise AssertionError("expected NodeUnavailable")


async def test_garbage_http_does_not_hurt_the_server(rpc: Harness) -> None:
    host, port = rpc.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    for junk in (b"\x00\xff garbage\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                 b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"):
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(host, int(port))
            try:
                await stream.send_all(junk)
                with trio.move_on_after(2):
                    await stream.receive_some(4096)  # a 400, or the server hangs up
            except trio.BrokenResourceError:
                pass
            finally:
                await stream.aclose()
    await assert_alive(rpc)
