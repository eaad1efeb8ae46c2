"""Websocket: subscribe to blocks and txs, calls over the socket, slow clients dropped."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.lowlevel
from trio_websocket import ConnectionClosed, open_websocket_url

from .conftest import Harness
from .fake_backend import txhash


def ws_url(rpc: Harness) -> str:
    return rpc.url.replace("http://", "ws://").rstrip("/") + "/websocket"


async def recv(ws: Any) -> dict[str, Any]:
    with trio.fail_after(5):
        return json.loads(await ws.get_message())


async def send(ws: Any, id_: Any, method: str, params: Any = None) -> None:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    await ws.send_message(json.dumps(msg))


async def test_subscribe_new_block_and_tx(rpc: Harness) -> None:
    async with open_websocket_url(ws_url(rpc)) as ws:
        await send(ws, "b", "subscribe", {"query": "tm.event='NewBlock'"})
        assert await recv(ws) == {"jsonrpc": "2.0", "id": "b", "result": {}}
        q_tx = f"tm.event='Tx' AND tx.hash='{txhash(b'ok-2').hex()}'"
        await send(ws, "t", "subscribe", [q_tx])
        assert (await recv(ws))["result"] == {}
        assert len(rpc.events) == 2

        rpc.backend.pending += [b"ok-1", b"ok-2"]
        block = rpc.backend.commit()
        got = [await recv(ws), await recv(ws)]
        by_id = {m["id"]: m["result"] for m in got}
        nb = by_id["b"]
        assert nb["query"] == "tm.event='NewBlock'"
        assert nb["data"]["type"] == "tendermint/event/NewBlock"
        assert nb["data"]["value"]["block_id"]["hash"] == block.hash.hex()
        assert nb["data"]["value"]["block"]["height"] == 1
        assert nb["data"]["value"]["block"]["data"]["txs"] == [b"ok-1".hex(), b"ok-2".hex()]
        tx = by_id["t"]["data"]["value"]["TxResult"]  # only ok-2 matches the hash filter
        assert tx["tx"] == b"ok-2".hex() and tx["index"] == 1 and tx["result"]["code"] == 0

        # ordinary methods work over the socket too
        await send(ws, 9, "status")
        assert (await recv(ws))["result"]["sync_info"]["latest_block_height"] == 1

        await send(ws, "u", "unsubscribe", {"query": "tm.event='NewBlock'"})
        assert (await recv(ws))["result"] == {}
        await send(ws, "u2", "unsubscribe", {"query": "tm.event='NewBlock'"})
        assert (await recv(ws))["error"]["code"] == -32001
        await send(ws, "all", "unsubscribe_all")
        assert (await recv(ws))["result"] == {}
        with trio.fail_after(5):
            while len(rpc.events):
                await trio.sleep(0.01)
    await rpc.result("health")


async def test_bad_messages_over_websocket(rpc: Harness) -> None:
    async with open_websocket_url(ws_url(rpc)) as ws:
        await ws.send_message("{nope")
        assert (await recv(ws))["error"]["code"] == -32700
        await send(ws, 1, "subscribe", {"query": "tm.event='Nope'"})
        assert (await recv(ws))["error"]["code"] == -32602
        await send(ws, 2, "subscribe", {"query": "DROP TABLE"})
        assert (await recv(ws))["error"]["code"] == -32602
        await send(ws, 3, "subscribe", {})
        assert (await recv(ws))["error"]["code"] == -32602
        await send(ws, 4, "subscribe", {"query": "tm.event='NewBlockHeader'"})
        assert (await recv(ws))["result"] == {}
        await send(ws, 5, "subscribe", {"query": "tm.event='NewBlockHeader'"})
        assert (await recv(ws))["error"]["code"] == -32602  # already subscribed
        await ws.send_message(b"\x00binary")
        assert (await recv(ws))["error"]["code"] == -32700
        block = rpc.backend.commit()
        ev = await recv(ws)
        assert ev["id"] == 4
        assert ev["result"]["data"]["value"]["block_id"]["hash"] == block.hash.hex()
    await rpc.result("health")


async def test_slow_client_is_dropped_without_blocking_node(rpc: Harness) -> None:
    async with open_websocket_url(ws_url(rpc)) as ws:
        await send(ws, "b", "subscribe", {"query": "tm.event='NewBlock'"})
        assert (await recv(ws))["result"] == {}
        # The client stops reading; the node keeps committing. publish() never blocks,
        # so this loop finishing at all shows the node is not held up by the client.
        with trio.fail_after(20):
            for _ in range(3000):
                rpc.backend.pending.append(b"ok" + bytes(2000))
                rpc.backend.commit()
                await trio.lowlevel.checkpoint()
                if rpc.events.dropped_subscribers or len(rpc.events) == 0:
                    break
            while len(rpc.events):
                await trio.sleep(0.01)
        # the server closed the connection with "slow client" after the queued frames
        with trio.fail_after(10):
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason.code == 1008
    await rpc.result("health")


async def test_subscribe_in_a_batch_is_refused(rpc: Harness) -> None:
    async with open_websocket_url(ws_url(rpc)) as ws:
        await ws.send_message(json.dumps([
            {"jsonrpc": "2.0", "id": 1, "method": "subscribe",
             "params": {"query": "tm.event='NewBlock'"}},
            {"jsonrpc": "2.0", "id": 2, "method": "health"}]))
        out = await recv(ws)
        assert out[0]["error"]["code"] == -32600 and "batch" in out[0]["error"]["message"]
        assert out[1]["result"] == {}
    assert len(rpc.events) == 0


async def test_websocket_connection_cap() -> None:
    from functools import partial

    from trio_websocket import HandshakeError

    from node.rpc import EventBus, serve_rpc

    from .conftest import TEST_CONFIG
    from .fake_backend import FakeBackend

    events = EventBus()
    stop = trio.Event()
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve_rpc, FakeBackend(events), events,
                                               TEST_CONFIG, max_websockets=1,
                                               shutdown_trigger=stop.wait))
            url = urls[0].replace("http://", "ws://") + "/websocket"
            async with open_websocket_url(url) as first:
                await send(first, 1, "health")
                assert (await recv(first))["result"] == {}
                try:
                    async with open_websocket_url(url):
                        raise AssertionError("second websocket accepted over the cap")
                except HandshakeError:
                    pass
            # the slot is free again once the first client left
            while True:
                try:
                    async with open_websocket_url(url) as again:
                        await send(again, 2, "health")
                        assert (await recv(again))["result"] == {}
                        break
                except HandshakeError:
                    await trio.sleep(0.02)
            stop.set()


async def test_subscription_requests_are_validated(rpc: Harness) -> None:
    async with open_websocket_url(ws_url(rpc)) as ws:
        q = {"query": "tm.event='NewBlock'"}
        for bad in ({"jsonrpc": "2.0", "method": "subscribe", "params": q},             # no id
                    {"jsonrpc": "2.0", "id": None, "method": "subscribe", "params": q},
                    {"jsonrpc": "1.0", "id": 1, "method": "subscribe", "params": q},
                    {"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": "x"}):
            await ws.send_message(json.dumps(bad))
            assert (await recv(ws))["error"]["code"] == -32600, bad
        assert len(rpc.events) == 0
