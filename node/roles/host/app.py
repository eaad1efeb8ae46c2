"""The gateway's HTTP app: OpenAI's API, with a permission bought before every answer.

Per request, in this order (each step refuses before anything is spent)::

    key -> 401      rate limit -> 429      key budget -> 402
    body -> 400 (malformed, over max_body_bytes)    model -> 404
    engine.prepare -> 400 (prompt over max_prompt_tokens / context)
    permission for hash(query text) -> 402 / 429 / 503   (the model has not run)
      (written to LMDB before the model runs; fsynced while it runs)
    engine.generate / stream -> 200 (SSE when stream=true), sent once the
      permission is on disk (permit_sync_ms = 0)
    usage[key] += 1 request, prompt and completion tokens

Any other exception is logged and answered 500 in OpenAI's error shape; the
node keeps serving. A gateway built with ``permits=None`` is the bare engine
(``oml-node host engine``): no permission layer, for use as an upstream.

Why 402 without a permission (docs/gateway.md): the query cannot be paid for
(the owner refused: escrow exhausted, host not active, a claim pending), and
retrying at once will not change that. OpenAI's SDKs retry 429 by themselves,
so a 429 would triple the permission requests for nothing; they do not retry
402, and its ``type`` is OpenAI's ``insufficient_quota``. Owner-side rate
limiting is a real 429; an owner nobody can reach is a 503.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.ledger.vouchers import query_hash
from node.roles.owner.protocol import Refusal

from .apikeys import KeyRing, RateLimiter, UsageBook
from .engine import Engine, Generation
from .openai_api import (
    INSUFFICIENT_QUOTA,
    NOT_FOUND,
    SERVER_ERROR,
    SSE_DONE,
    UNAVAILABLE,
    ApiError,
    GenRequest,
    Usage,
    bad_request,
    chunk,
    completion_response,
    models_response,
    parse_chat,
    parse_completion,
    parse_json_body,
    sse,
    usage_chunk,
)
from .permits import PermissionRefused
from .store import KeyUsage, Permit

log = logging.getLogger("node.roles.host")


class Permits(Protocol):
    """The permission layer as the app sees it (:class:`.permits.Permitter`)."""

    async def permit(self, qhash: bytes) -> Permit: ...

    async def durable(self, ticket: int) -> None:
        """Return once the permission written with ``ticket`` may back an answer."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_new_tokens: int = 256


#: Owner refusals -> (status, error code) answered to the client.
_REFUSALS: dict[int, tuple[int, str]] = {
    Refusal.HOST_NOT_ACTIVE: (402, "host_not_active"),
    Refusal.ESCROW_EXHAUSTED: (402, "escrow_exhausted"),
    Refusal.CLAIM_PENDING: (402, "claim_pending"),
    Refusal.BAD_VOUCHER: (402, "permission_refused"),
    Refusal.BAD_REQUEST: (402, "permission_refused"),
    Refusal.VOUCHER_STALE: (503, "permission_unavailable"),
    Refusal.RATE_LIMITED: (429, "owner_rate_limited"),
}


def refusal_error(exc: PermissionRefused) -> ApiError:
    """The client's error for a query the gateway could not buy a permission for."""
    status, code = _REFUSALS.get(exc.code, (503, "permission_unavailable")) \
        if exc.code is not None else (503, "permission_unavailable")
    if status == 402:
        return ApiError(402, f"The model owner refused a permission for this query: "
                             f"{exc.message}", type_=INSUFFICIENT_QUOTA, code=code)
    if status == 429:
        return ApiError(429, f"The model owner is rate limiting this host: {exc.message}",
                        type_="requests", code=code, headers={"retry-after": "1"})
    return ApiError(503, f"No permission could be obtained for this query: {exc.message}",
                    type_=UNAVAILABLE, code=code)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (400) to buffer more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise bad_request(f"request body exceeds {limit} bytes", code="request_too_large")
    chunks: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise bad_request(f"request body exceeds {limit} bytes", code="request_too_large")
        chunks.append(part)
    return b"".join(chunks)


def _error_response(err: ApiError) -> Response:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


Write = Callable[[bytes], Awaitable[None]]


class SSEResponse(Response):
    """``text/event-stream`` whose body ``produce(write)`` writes.

    The status line goes out with the first write, so an :class:`ApiError`
    raised before anything was written (an upstream that refuses or is down)
    is still answered with its own status and error body. A client that
    disconnects cancels ``produce`` (the engine stops at its next token).
    """

    media_type = "text/event-stream"

    def __init__(self, produce: Callable[[Write], Awaitable[None]],
                 headers: dict[str, str] | None = None) -> None:
        # no super().__init__: it would declare Content-Length 0 for the empty content
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in (headers or {}).items()]
        self._produce = produce

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = False

        async def write(data: bytes) -> None:
            nonlocal started
            if not started:
                started = True
                await send({"type": "http.response.start", "status": self.status_code,
                            "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": data, "more_body": True})

        refused: ApiError | None = None
        async with trio.open_nursery() as nursery:
            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_disconnect)
            try:
                await self._produce(write)
            except ApiError as err:
                if started:
                    raise
                refused = err
            nursery.cancel_scope.cancel()
        if refused is not None:
            await _error_response(refused)(scope, receive, send)
            return
        if not started:
            await write(b"")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class Gateway:
    """The pieces the app serves with; build the ASGI app with :meth:`app`."""

    def __init__(self, *, engine: Engine, model_name: str, permits: Permits | None,
                 keys: KeyRing, usage: UsageBook, limits: Limits = Limits(),
                 limiter: RateLimiter | None = None,
                 clock: Callable[[], float] = time.time, owned_by: str = "oml-node") -> None:
        self.engine = engine
        self.model_name = model_name
        self.permits = permits
        self.keys = keys
        self.usage = usage
        self.limits = limits
        self.limiter = limiter or RateLimiter(trio.current_time)
        self._clock = clock
        self._owned_by = owned_by
        self.started = int(clock())

    # ------------------------------------------------------------------ routes

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/models", self._guard(self.models), methods=["GET"]),
            Route("/v1/models/{model:path}", self._guard(self.model), methods=["GET"]),
            Route("/v1/completions", self._guard(self.completions), methods=["POST"]),
            Route("/v1/chat/completions", self._guard(self.chat), methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
        ])

    def _guard(self, handler: Callable[[Request], Awaitable[Response]]
               ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as err:
                return _error_response(err)
            except Exception:  # a bug: answer 500, log it, keep serving
                log.exception("gateway request %s %s failed", request.method, request.url.path)
                return _error_response(ApiError(500, "The gateway failed to answer this "
                                                     "request (see the node's log).",
                                                type_=SERVER_ERROR, code="internal_error"))
        return guarded

    async def health(self, _request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def models(self, request: Request) -> Response:
        self.keys.authenticate(request.headers.get("authorization"))
        return JSONResponse(models_response([self.model_name], created=self.started,
                                            owned_by=self._owned_by))

    async def model(self, request: Request) -> Response:
        self.keys.authenticate(request.headers.get("authorization"))
        name = request.path_params["model"]
        if name != self.model_name:
            raise self._unknown_model(name)
        return JSONResponse(models_response([name], created=self.started,
                                            owned_by=self._owned_by)["data"][0])

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, parse_completion)

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, parse_chat)

    # ------------------------------------------------------------------ the pipeline

    def _unknown_model(self, name: str) -> ApiError:
        return ApiError(404, f"The model '{name}' does not exist; this gateway serves "
                             f"'{self.model_name}'.", type_=NOT_FOUND, param="model",
                        code="model_not_found")

    async def _generate(self, request: Request, parse: Callable[..., GenRequest]) -> Response:
        key = self.keys.authenticate(request.headers.get("authorization"))
        self.limiter.check(key)
        self.usage.check_budget(key)
        data = parse_json_body(await read_body(request, self.limits.max_body_bytes))
        req = parse(data, max_new_tokens=self.limits.max_new_tokens)
        if req.model != self.model_name:
            raise self._unknown_model(req.model)
        prepared = await self.engine.prepare(req)
        headers: dict[str, str] = {}
        ticket = 0
        if self.permits is not None:
            try:
                permit = await self.permits.permit(query_hash(req.query_text))
            except PermissionRefused as exc:
                self.usage.add(key.name, KeyUsage(refused=1))
                raise refusal_error(exc) from None
            ticket = permit.ticket
            headers = {"x-oml-permission-seq": str(permit.seq),
                       "x-oml-permission-height": str(permit.issued_height)}
        id_ = ("cmpl-" if req.kind == "completion" else "chatcmpl-") + uuid.uuid4().hex
        created = int(self._clock())
        if req.stream:
            async def produce(write: Write) -> None:
                ready = False

                async def gated(data: bytes) -> None:
                    nonlocal ready
                    if not ready:  # no byte of an answer before its permission is on disk
                        await self._durable(ticket)
                        ready = True
                    await write(data)

                await self._stream(gated, key.name, req, prepared, id_, created)

            return SSEResponse(produce, headers)
        gen = await self.engine.generate(prepared)
        await self._durable(ticket)
        self._count(key.name, gen)
        return JSONResponse(completion_response(
            req, id_=id_, created=created, text=gen.text, finish_reason=gen.finish_reason,
            usage=Usage(gen.prompt_tokens, gen.completion_tokens)), headers=headers)

    async def _durable(self, ticket: int) -> None:
        if self.permits is not None:
            await self.permits.durable(ticket)

    def _count(self, name: str, gen: Generation) -> None:
        self.usage.add(name, KeyUsage(requests=1, prompt_tokens=gen.prompt_tokens,
                                      completion_tokens=gen.completion_tokens))

    async def _stream(self, write: Write, name: str, req: GenRequest, prepared: Any, id_: str,
                      created: int) -> None:
        first = True

        async def emit(text: str) -> None:
            nonlocal first
            await write(sse(chunk(req, id_=id_, created=created, text=text, first=first)))
            first = False

        try:
            gen = await self.engine.stream(prepared, emit)
        except ApiError as err:
            if first:
                raise  # nothing sent yet: answered with its own status
            await write(sse(err.body()))  # mid-stream: the error goes in the stream
            await write(SSE_DONE)
            return
        except Exception:
            log.exception("gateway stream failed")
            err = ApiError(500, "The gateway failed while streaming.", type_=SERVER_ERROR,
                           code="internal_error")
            if first:
                raise err from None
            await write(sse(err.body()))
            await write(SSE_DONE)
            return
        self._count(name, gen)
        await write(sse(chunk(req, id_=id_, created=created, text=None if not first else "",
                              finish_reason=gen.finish_reason, first=first)))
        if req.include_usage:
            await write(sse(usage_chunk(req, id_=id_, created=created,
                                        usage=Usage(gen.prompt_tokens,
                                                    gen.completion_tokens))))
        await write(SSE_DONE)


__all__ = ["Gateway", "Limits", "Permits", "SSEResponse", "read_body", "refusal_error"]
