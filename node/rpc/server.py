"""The HTTP side: a Starlette ASGI app served by Hypercorn's trio worker.

Why these two (see docs/rpc.md): the node runs on trio (py-libp2p needs it),
and Hypercorn is the maintained ASGI server with a native trio worker, HTTP/1.1
keep-alive, websockets (wsproto) and a programmatic ``serve`` with a shutdown
trigger and a ``task_status`` that reports the bound address. Starlette is
anyio-based, so it runs unchanged on trio, and gives routing, request body
streaming and websockets without a framework's worth of opinions. Both were
already project dependencies.

Routes:

* ``POST /``: JSON-RPC 2.0 (single or batch). Always HTTP 200 with a JSON-RPC
  body, except: 204 (empty body) when the request held only notifications,
  and 413 with a -32600 error body when the body exceeds ``max_body_bytes``.
* ``GET /health``: ``ok`` as plain text (for load balancers and scripts).
* ``GET /``: a one-line hint and the list of methods (JSON).
* ``WS /websocket``: JSON-RPC plus ``subscribe`` (see ``websocket.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from node.config import RPCSection

from .backend import NodeBackend
from .errors import INVALID_REQUEST, error_object
from .events import EventBus
from .jsonrpc import CallObserver, Dispatcher, dump_json, error_response
from .methods import Context, Method, build_methods
from .websocket import websocket_session

log = logging.getLogger("node.rpc")


#: Concurrent websocket sessions per server; each holds subscriptions and an outbox.
MAX_WEBSOCKETS = 100


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing to buffer more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass  # h11 already rejects malformed lengths; stream and count instead
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_rpc_app(backend: NodeBackend, events: EventBus, config: RPCSection, *,
                  observer: CallObserver | None = None,
                  server_urls: list[str] | None = None,
                  max_websockets: int = MAX_WEBSOCKETS,
                  extra_methods: Sequence[Method] = ()) -> Starlette:
    """The ASGI app serving JSON-RPC over ``backend``.

    At most ``max_websockets`` websocket sessions run at once; further
    upgrade requests are refused (HTTP 403 from the handshake) until one ends.

    Returned with ``app.state.dispatcher`` set so callers (and tests) can
    reach the method table and the context.
    """
    methods = build_methods(extra_methods)
    context = Context(backend=backend, events=events, config=config, methods=methods,
                      server_urls=list(server_urls or []))
    dispatcher = Dispatcher(methods, context, max_batch=config.max_batch, observer=observer)

    async def rpc_post(request: Request) -> Response:
        try:
            body = await _read_body(request, config.max_body_bytes)
        except _TooLarge:
            msg = f"request body exceeds max_body_bytes {config.max_body_bytes}"
            return Response(dump_json(error_response(None, error_object(INVALID_REQUEST, msg))),
                            status_code=413, media_type="application/json")
        result = await dispatcher.handle_body(body)
        if result is None:
            return Response(status_code=204)
        return Response(dump_json(result), media_type="application/json")

    async def index(_request: Request) -> Response:
        return JSONResponse({"jsonrpc": "POST JSON-RPC 2.0 requests to /; websocket at "
                                        "/websocket; call rpc.discover for the full description",
                             "methods": sorted(methods)})

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    open_websockets = 0

    async def ws_endpoint(ws: WebSocket) -> None:
        nonlocal open_websockets
        if open_websockets >= max_websockets:
            await ws.close(code=1013)  # before accept: the handshake is refused
            return
        open_websockets += 1
        try:
            await websocket_session(ws, dispatcher)
        finally:
            open_websockets -= 1

    app = Starlette(routes=[
        Route("/", rpc_post, methods=["POST"]),
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        WebSocketRoute("/websocket", ws_endpoint),
    ])
    app.state.dispatcher = dispatcher
    return app


def hypercorn_config(laddr: str, *, max_ws_message: int = 1_000_000) -> HypercornConfig:
    """Hypercorn settings for one of our local listeners (``host:port``; port 0 = any)."""
    cfg = HypercornConfig()
    cfg.bind = [laddr]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")
    cfg.graceful_timeout = 1.0
    cfg.shutdown_timeout = 1.0
    cfg.keep_alive_timeout = 30.0
    cfg.websocket_max_message_size = max_ws_message
    cfg.h2_max_inbound_frame_size = 1 << 16
    return cfg


async def serve_app(app: Any, laddr: str, *,
                    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                    max_ws_message: int = 1_000_000,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``laddr`` until ``shutdown_trigger`` returns (or we are cancelled).

    ``task_status.started`` receives the bound URLs (e.g. ``["http://127.0.0.1:4242"]``),
    so ``await nursery.start(serve_app, ...)`` returns once the socket listens.
    """
    cfg = hypercorn_config(laddr, max_ws_message=max_ws_message)
    trigger = shutdown_trigger if shutdown_trigger is not None else trio.sleep_forever
    await serve(app, cfg, shutdown_trigger=trigger, task_status=task_status)


async def serve_rpc(backend: NodeBackend, events: EventBus, config: RPCSection, *,
                    observer: CallObserver | None = None,
                    max_websockets: int = MAX_WEBSOCKETS,
                    extra_methods: Sequence[Method] = (),
                    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Build the RPC app and serve it on ``config.laddr`` (see :func:`serve_app`)."""

    async def started(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
                      ) -> None:
        await serve_app(app, config.laddr, shutdown_trigger=shutdown_trigger,
                        max_ws_message=config.max_body_bytes, task_status=task_status)

    app = build_rpc_app(backend, events, config, observer=observer,
                        max_websockets=max_websockets, extra_methods=extra_methods)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(started)
        app.state.dispatcher.context.server_urls[:] = list(urls)
        log.info("JSON-RPC listening on %s", ", ".join(urls))
        task_status.started(urls)
