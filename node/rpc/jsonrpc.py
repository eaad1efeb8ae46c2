"""JSON-RPC 2.0 message handling, independent of HTTP and websockets.

:class:`Dispatcher` takes a request body (bytes) or one decoded message and
returns the response value (or None when nothing must be sent: a
notification, or a batch of only notifications). Transport code (``server``,
``websocket``) only moves bytes. Every failure becomes an error response; the
only thing that escapes is cancellation.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio

from .backend import JSON
from .errors import (
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RPCError,
    error_object,
    to_error_object,
)
from .methods import Context, Method
from .params import bind_params

log = logging.getLogger("node.rpc")

#: Called after every call: (method name or "unknown", error code or None, seconds).
CallObserver = Callable[[str, "int | None", float], None]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Parse a request body; raises :class:`ParseError` (never anything else)."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"parse error: {type(exc).__name__}") from None


def dump_json(value: JSON) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (
        isinstance(value, (int, float)) and not isinstance(value, bool))


def error_response(id_: Any, error: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error}


class Dispatcher:
    """Validates JSON-RPC messages, binds params, calls handlers, builds responses.

    Args:
        methods: the method table (see :func:`node.rpc.methods.build_methods`).
        context: passed as the first argument to every handler.
        max_batch: largest batch accepted; bigger ones get one -32600 error.
        observer: optional metrics hook, called once per request.
    """

    def __init__(self, methods: Mapping[str, Method], context: Context, *, max_batch: int,
                 observer: CallObserver | None = None) -> None:
        self.methods = methods
        self.context = context
        self.max_batch = max_batch
        self.observer = observer

    async def handle_body(self, body: bytes, *, websocket: bool = False) -> JSON | None:
        """Response value for a whole body (single or batch), or None if none is due."""
        try:
            message = parse_json(body)
        except ParseError as exc:
            self._observe("unknown", exc.code, 0.0)
            return error_response(None, to_error_object(exc))
        return await self.handle_value(message, websocket=websocket)

    async def handle_value(self, message: Any, *, websocket: bool = False) -> JSON | None:
        if not isinstance(message, list):
            return await self.handle_one(message, websocket=websocket)
        if not message:
            return error_response(None, error_object(InvalidRequest.code, "empty batch"))
        if len(message) > self.max_batch:
            return error_response(None, error_object(
                InvalidRequest.code, f"batch of {len(message)} exceeds max_batch {self.max_batch}"))
        results: list[JSON | None] = [None] * len(message)

        async def run(i: int, item: Any) -> None:
            results[i] = await self.handle_one(item, websocket=websocket)

        # Concurrently, so one slow broadcast_tx_commit does not serialise the rest;
        # responses keep request order (the spec allows any order, clients like this one).
        async with trio.open_nursery() as nursery:
            for i, item in enumerate(message):
                nursery.start_soon(run, i, item)
        out = [r for r in results if r is not None]
        return out or None

    async def handle_one(self, msg: Any, *, websocket: bool = False) -> JSON | None:
        """Response for one request object, or None for a notification."""
        start = time.perf_counter()
        if not isinstance(msg, dict):
            self._observe("unknown", InvalidRequest.code, 0.0)
            return error_response(None, error_object(InvalidRequest.code,
                                                     "request must be an object"))
        has_id = "id" in msg
        id_ = msg.get("id")
        try:
            if not _valid_id(id_):
                id_ = None
                raise InvalidRequest("id must be a string, a number or null")
            if msg.get("jsonrpc") != "2.0":
                raise InvalidRequest('jsonrpc must be exactly "2.0"')
            name = msg.get("method")
            if not isinstance(name, str):
                raise InvalidRequest("method must be a string")
            params = msg.get("params")
            if "params" in msg and not isinstance(params, (dict, list)):
                raise InvalidRequest("params must be an object or an array")
        except RPCError as exc:
            self._observe("unknown", exc.code, 0.0)
            return error_response(id_, to_error_object(exc))
        method = self.methods.get(name)
        label = name if method is not None else "unknown"
        try:
            if method is None:
                raise MethodNotFound(f"method not found: {name[:100]}")
            if method.websocket_only:
                # The websocket session handles these itself; reaching here means HTTP,
                # or a batch on the socket, which cannot carry a subscription.
                if not websocket:
                    raise MethodNotFound(
                        f"{name} is only available over the websocket at /websocket")
                raise InvalidRequest(f"{name} must be sent on its own, not in a batch")
            kwargs = bind_params(method.params, params)
            result = await method.handler(self.context, **kwargs)
        except trio.Cancelled:
            raise
        except Exception as exc:  # every failure becomes an error response; see errors.py
            err = to_error_object(exc)
            if not isinstance(exc, RPCError) and err["code"] == -32603:
                log.exception("internal error in RPC method %s", name)
            self._observe(label, err["code"], time.perf_counter() - start)
            return error_response(id_, err) if has_id else None
        self._observe(label, None, time.perf_counter() - start)
        if not has_id:
            return None
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    def _observe(self, method: str, code: int | None, seconds: float) -> None:
        if self.observer is not None:
            try:
                self.observer(method, code, seconds)
            except Exception:  # metrics must never break a response
                log.exception("RPC metrics observer failed")
