"""Unit tests: event bus, query parsing, param binding, error mapping."""

from __future__ import annotations

import pytest
import trio

from node.rpc import (
    BadArgument,
    BlockView,
    EventBus,
    NewBlockEvent,
    NodeUnavailable,
    NotFound,
    Overloaded,
    Timeout,
    TxRejected,
    parse_query,
)
from node.rpc.errors import InvalidParams, to_error_object
from node.rpc.params import HexBytes, Integer, Param, Text, bind_params


def event(h: int) -> NewBlockEvent:
    return NewBlockEvent(block=BlockView(hash=bytes(32), height=h, time_ms=0, header={}, txs=()))


async def test_bus_fans_out_and_drops_full_subscriber() -> None:
    bus = EventBus()
    fast = bus.subscribe(maxsize=10)
    slow = bus.subscribe(maxsize=2)
    for h in range(1, 4):
        bus.publish(event(h))  # never blocks, even with a full subscriber
    assert slow.dropped and not fast.dropped
    assert bus.dropped_subscribers == 1 and len(bus) == 1
    # the dropped subscriber still drains what it had, then ends
    got = [e.block.height async for e in slow]
    assert got == [1, 2]
    with trio.fail_after(1):
        assert [(await fast.receive()).block.height for _ in range(3)] == [1, 2, 3]
    fast.close()
    assert len(bus) == 0
    bus.publish(event(4))  # no subscribers: fine
    assert bus.published == 4


def test_bus_subscriber_cap() -> None:
    bus = EventBus(max_subscribers=1)
    with bus.subscribe(), pytest.raises(Overloaded):
        bus.subscribe()
    bus.subscribe()  # released by the with block


def test_parse_query() -> None:
    q = parse_query("tm.event='NewBlock'")
    assert q.event == "NewBlock" and q.wants_block()
    q = parse_query("tm.event = 'Tx' AND tx.hash='ABCD' AND tx.height=5")
    assert (q.event, q.tx_hash, q.tx_height) == ("Tx", b"\xab\xcd", 5)
    for bad in ("", "tm.event='Other'", "tx.hash='aa'", "tm.event='NewBlock' AND tx.hash='aa'",
                "tm.event='Tx' AND tx.hash='zz'", "tm.event='Tx' OR tm.event='NewBlock'",
                "tm.event='Tx' AND tm.event='Tx'", "tm.event=5", "x" * 600):
        with pytest.raises(InvalidParams):
            parse_query(bad)


def test_bind_params() -> None:
    specs = (Param("a", Integer(1, 10), "a"), Param("b", HexBytes(0, 4), "b", required=False),
             Param("c", Text(3), "c", required=False))
    assert bind_params(specs, {"a": 3}) == {"a": 3}
    assert bind_params(specs, [3, "0xAB"]) == {"a": 3, "b": b"\xab"}
    assert bind_params(specs, {"a": "7", "b": None, "c": "xyz"}) == {"a": 7, "c": "xyz"}
    for raw in (None, {}, {"a": 11}, {"a": 1, "z": 1}, [1, "ab", "x", 4], {"a": 1, "b": "abc"},
                {"a": 1, "b": "0011223344"}, {"a": 1, "c": "long"}, {"a": "1e3"}, {"a": 2.0}):
        with pytest.raises(InvalidParams):
            bind_params(specs, raw)


def test_error_mapping_is_one_table() -> None:
    assert to_error_object(NotFound("x"))["code"] == -32001
    assert to_error_object(TxRejected("x"))["code"] == -32002
    assert to_error_object(Timeout("x"))["code"] == -32003
    assert to_error_object(NodeUnavailable("catching up"))["code"] == -32004
    assert to_error_object(Overloaded("x"))["code"] == -32005
    assert to_error_object(BadArgument("x"))["code"] == -32602
    assert to_error_object(NotFound("block 9 not found"))["message"] == "block 9 not found"
    assert to_error_object(KeyError("secret")) == {"code": -32603, "message": "internal error"}


def test_rfc3339_is_exact() -> None:
    from node.rpc.render import rfc3339

    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_795_314_600_999) == "2026-11-22T02:30:00.999Z"
    assert rfc3339(1_795_314_601_000) == "2026-11-22T02:30:01.000Z"


async def test_tx_waiters_by_hash() -> None:
    from node.rpc import TxResult, TxView

    bus = EventBus(max_tx_waiters=2)

    def tv(h: bytes, height: int) -> TxView:
        return TxView(hash=h, height=height, index=0, tx=b"t", result=TxResult(code=0))

    with bus.watch_tx(b"a" * 32) as wa, bus.watch_tx(b"b" * 32) as wb:
        assert bus.tx_waiters == 2
        with pytest.raises(Overloaded), bus.watch_tx(b"c" * 32):
            pass
        bus.publish(NewBlockEvent(block=event(1).block, txs=(tv(b"a" * 32, 1),)))
        with trio.fail_after(1):
            assert (await wa.wait()).height == 1
        assert wb.tx is None
        # a later block with the same hash does not overwrite the first sighting
        bus.publish(NewBlockEvent(block=event(2).block, txs=(tv(b"a" * 32, 2),)))
        assert wa.tx is not None and wa.tx.height == 1
    assert bus.tx_waiters == 0
