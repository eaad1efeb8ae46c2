"""Proxy mode: the gateway in front of an existing OpenAI-compatible server.

vLLM, TGI (its OpenAI "messages" API), llama.cpp's server and the gateway's
own bare engine (``oml-node host engine``) all speak ``/v1/completions`` and
``/v1/chat/completions``. The gateway keeps everything that makes a query
paid for and permitted -- keys, limits, the permission bought and stored
before the request is forwarded -- and forwards the client's request body
(with ``model`` renamed to ``upstream_model`` when set) with httpx.

Streaming is passed through piece by piece: each upstream chunk's text is
re-emitted in the gateway's own chunk (same id scheme, same ``model`` name
as the client asked for), and the upstream is always asked for usage
(``stream_options.include_usage``) so the key's token counts are right.
The prompt is counted by the upstream; when ``model_dir`` is also set, its
tokenizer enforces ``max_prompt_tokens`` before a permission is bought.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .engine import Emit, Generation, Prepared, too_long
from .openai_api import SERVER_ERROR, ApiError, GenRequest

#: How long the upstream may take to start answering (a long generation streams).
DEFAULT_TIMEOUT_S = 600.0


def _upstream_error(status: int, body: bytes) -> ApiError:
    """The upstream's 4xx error as ours (it knows best what was wrong); 5xx becomes 502."""
    message = f"upstream answered HTTP {status}"
    type_, code = SERVER_ERROR, "upstream_error"
    try:
        err = json.loads(body).get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or message)
            type_ = str(err.get("type") or type_)
            code = err.get("code") if isinstance(err.get("code"), str) else code
        elif isinstance(err, str):
            message = err
    except (ValueError, AttributeError):
        pass
    if 400 <= status < 500 and status not in (401, 403):
        return ApiError(status, message, type_=type_, code=code)
    return ApiError(502, f"upstream error: {message}", type_=SERVER_ERROR, code="upstream_error")


def _text_of(choice: dict[str, Any], kind: str) -> str:
    if kind == "completion":
        text = choice.get("text")
    else:
        part = choice.get("delta") or choice.get("message") or {}
        text = part.get("content") if isinstance(part, dict) else None
    return text if isinstance(text, str) else ""


class ProxyEngine:
    """Forwards to ``base_url`` (``http://host:port`` or ``.../v1``)."""

    def __init__(self, base_url: str, *, upstream_model: str = "", api_key: str = "",
                 tokenizer: Any = None, max_prompt_tokens: int = 0,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base = base_url.rstrip("/")
        self.base = base if base.endswith("/v1") else base + "/v1"
        self._model = upstream_model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, transport=transport,
                                         timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._tokenizer = tokenizer
        self._max_prompt = max_prompt_tokens

    async def prepare(self, req: GenRequest) -> Prepared:
        tokens = 0
        if self._tokenizer is not None:
            from oml.decoding import prompt_ids

            text = req.prompt if req.kind == "completion" else \
                "\n".join(m.content for m in req.messages)
            tokens = len(prompt_ids(self._tokenizer, [text])[0])
            if self._max_prompt and tokens > self._max_prompt:
                raise too_long(tokens, self._max_prompt, "prompt length")
        return Prepared(req=req, prompt_tokens=tokens, max_tokens=req.max_tokens)

    def _body(self, req: GenRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        body = dict(req.raw)
        body["model"] = self._model or req.model
        body["max_tokens"] = req.max_tokens
        body.pop("max_completion_tokens", None)
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream_options", None)
        path = "/completions" if req.kind == "completion" else "/chat/completions"
        return self.base + path, body

    def _generation(self, prepared: Prepared, text: str, finish: str | None,
                    usage: dict[str, Any] | None) -> Generation:
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens") or prepared.prompt_tokens)
        completion = int(usage.get("completion_tokens") or 0)
        return Generation(text, prompt, completion, finish or "stop")

    async def generate(self, prepared: Prepared) -> Generation:
        url, body = self._body(prepared.req, stream=False)
        try:
            resp = await self._client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise ApiError(502, f"upstream unreachable: {exc}", type_=SERVER_ERROR,
                           code="upstream_error") from None
        if resp.status_code != 200:
            raise _upstream_error(resp.status_code, resp.content)
        try:
            data = resp.json()
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ApiError(502, "upstream answered with a malformed body",
                           type_=SERVER_ERROR, code="upstream_error") from None
        return self._generation(prepared, _text_of(choice, prepared.req.kind),
                                choice.get("finish_reason"), data.get("usage"))

    async def stream(self, prepared: Prepared, emit: Emit) -> Generation:
        url, body = self._body(prepared.req, stream=True)
        pieces: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] | None = None
        try:
            async with self._client.stream("POST", url, json=body) as resp:
                if resp.status_code != 200:
                    raise _upstream_error(resp.status_code, await resp.aread())
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        continue
                    if not isinstance(event, dict):
                        continue
                    if isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                    for choice in event.get("choices") or ():
                        text = _text_of(choice, prepared.req.kind)
                        if text:
                            pieces.append(text)
                            await emit(text)
                        finish = choice.get("finish_reason") or finish
        except httpx.HTTPError as exc:
            raise ApiError(502, f"upstream failed: {exc}", type_=SERVER_ERROR,
                           code="upstream_error") from None
        return self._generation(prepared, "".join(pieces), finish, usage)

    async def aclose(self) -> None:
        await self._client.aclose()


__all__ = ["ProxyEngine"]
