"""The /websocket endpoint: JSON-RPC over a websocket, plus event subscriptions.

Any method of the table can be called over the socket. ``subscribe`` adds a
subscription on the :class:`~node.rpc.events.EventBus`; matching events are
pushed as JSON-RPC responses carrying the subscribe request's id (CometBFT's
shape: ``{"jsonrpc":"2.0","id":ID,"result":{"query":Q,"data":{"type":...,
"value":...},"events":{...}}}``).

Slow clients must not slow the node: everything the connection sends goes
through one bounded outbox, filled without waiting. When it is full the
client is too slow and is disconnected (close code 1008, reason "slow
client"); the bus also drops a subscription whose own queue overflows,
which closes the connection the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import render as R
from .backend import JSON, NewBlockEvent
from .errors import InvalidParams, InvalidRequest, NotFound, Overloaded, RPCError, to_error_object
from .events import EventQuery, parse_query
from .jsonrpc import Dispatcher, dump_json, error_response, parse_json
from .params import bind_params

log = logging.getLogger("node.rpc.websocket")

MAX_SUBSCRIPTIONS_PER_CLIENT = 10
OUTBOX_SIZE = 256
SUBSCRIPTION_QUEUE = 100
CLOSE_SLOW_CLIENT = 1008


def event_messages(q: EventQuery, event: NewBlockEvent) -> list[JSON]:
    """The ``result`` objects that ``event`` produces for query ``q`` (maybe none)."""
    b = event.block
    if q.event == "NewBlock":
        return [{"query": q.text,
                 "data": {"type": "tendermint/event/NewBlock", "value": R.new_block_value(b)},
                 "events": {"tm.event": ["NewBlock"], "block.height": [str(b.height)]}}]
    if q.event == "NewBlockHeader":
        return [{"query": q.text,
                 "data": {"type": "tendermint/event/NewBlockHeader",
                          "value": R.new_block_header_value(b)},
                 "events": {"tm.event": ["NewBlockHeader"], "block.height": [str(b.height)]}}]
    out = []
    for t in event.txs:
        if q.tx_hash is not None and t.hash != q.tx_hash:
            continue
        if q.tx_height is not None and t.height != q.tx_height:
            continue
        out.append({"query": q.text,
                    "data": {"type": "tendermint/event/Tx", "value": R.tx_value(t)},
                    "events": {"tm.event": ["Tx"], "tx.hash": [t.hash.hex()],
                               "tx.height": [str(t.height)]}})
    return out


class _Connection:
    """State of one websocket client: its outbox and its subscriptions."""

    def __init__(self, ws: WebSocket, dispatcher: Dispatcher, nursery: trio.Nursery) -> None:
        self.ws = ws
        self.dispatcher = dispatcher
        self.nursery = nursery
        self.outbox_send, self.outbox_recv = trio.open_memory_channel[bytes](OUTBOX_SIZE)
        self.subs: dict[str, trio.CancelScope] = {}
        self.slow = False

    def push(self, value: JSON) -> None:
        """Queue a message without waiting; a full outbox means the client is too slow."""
        try:
            self.outbox_send.send_nowait(dump_json(value))
        except trio.WouldBlock:
            self.slow = True
            self.nursery.cancel_scope.cancel()

    async def sender(self) -> None:
        async for data in self.outbox_recv:
            await self.ws.send_text(data.decode("utf-8"))

    async def reader(self) -> None:
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                self.nursery.cancel_scope.cancel()
                return
            data = frame.get("bytes") if frame.get("text") is None else frame["text"].encode()
            try:
                message = parse_json(data or b"")
            except RPCError as exc:
                self.push(error_response(None, to_error_object(exc)))
                continue
            if isinstance(message, dict) and message.get("method") in (
                    "subscribe", "unsubscribe", "unsubscribe_all"):
                self.push(self.subscription_call(message))
                continue
            response = await self.dispatcher.handle_value(message, websocket=True)
            if response is not None:
                self.push(response)

    def subscription_call(self, msg: dict[str, Any]) -> JSON:
        id_ = msg.get("id")
        method = msg["method"]
        try:
            if msg.get("jsonrpc") != "2.0":
                raise InvalidRequest('jsonrpc must be exactly "2.0"')
            if not isinstance(id_, (str, int)) or isinstance(id_, bool):
                id_ = None
                raise InvalidRequest(f"{method} needs a string or integer id "
                                     "(pushed events carry it)")
            params = msg.get("params")
            if "params" in msg and not isinstance(params, (dict, list)):
                raise InvalidRequest("params must be an object or an array")
            method_spec = self.dispatcher.methods[method]
            kwargs = bind_params(method_spec.params, params)
            if method == "unsubscribe_all":
                for scope in self.subs.values():
                    scope.cancel()
                self.subs.clear()
            elif method == "unsubscribe":
                scope = self.subs.pop(kwargs["query"], None)
                if scope is None:
                    raise NotFound(f"no subscription for query {kwargs['query']!r}")
                scope.cancel()
            else:
                query = parse_query(kwargs["query"])
                if query.text in self.subs:
                    raise InvalidParams("already subscribed to this query")
                if len(self.subs) >= MAX_SUBSCRIPTIONS_PER_CLIENT:
                    raise Overloaded(f"at most {MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions "
                                     "per connection")
                sub = self.dispatcher.context.events.subscribe(SUBSCRIPTION_QUEUE)
                scope = trio.CancelScope()
                self.subs[query.text] = scope
                self.nursery.start_soon(self.forward, query, sub, scope, id_)
        except Exception as exc:  # typed errors map to codes; others are logged bugs
            err = to_error_object(exc)
            if err["code"] == -32603:
                log.exception("internal error in websocket %s", method)
            return error_response(id_, err)
        return {"jsonrpc": "2.0", "id": id_, "result": {}}

    async def forward(self, query: EventQuery, sub: Any, scope: trio.CancelScope,
                      id_: Any) -> None:
        with scope, sub:
            async for event in sub:
                for result in event_messages(query, event):
                    self.push({"jsonrpc": "2.0", "id": id_, "result": result})
            if sub.dropped:  # the bus dropped us: we could not keep up
                self.slow = True
                self.nursery.cancel_scope.cancel()


async def websocket_session(ws: WebSocket, dispatcher: Dispatcher) -> None:
    """Serve one websocket connection until the client leaves or is dropped."""
    await ws.accept()
    conn: _Connection | None = None
    async with trio.open_nursery() as nursery:
        conn = _Connection(ws, dispatcher, nursery)
        nursery.start_soon(conn.sender)
        nursery.start_soon(conn.reader)
    if conn.slow:
        log.info("dropping slow websocket client")
        with trio.move_on_after(1):
            try:
                await ws.close(code=CLOSE_SLOW_CLIENT, reason="slow client")
            except (RuntimeError, WebSocketDisconnect, OSError):
                pass
    else:
        with trio.move_on_after(1):
            try:
                await ws.close()
            except (RuntimeError, WebSocketDisconnect, OSError):
                pass

