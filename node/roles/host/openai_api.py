"""The OpenAI API as the gateway speaks it: parsing, the query text, responses, SSE.

Sans-IO: no sockets, no clock (timestamps are passed in), no model. The HTTP
app (``app.py``) feeds request bodies in and writes out what these functions
return, so every rule about the wire format lives here and is unit-tested.

**The query text** (what a permission string covers, DESIGN.md "Permission
strings"): for ``/v1/completions`` the prompt; for ``/v1/chat/completions``
the content of the *last* message whose role is ``user``. The ledger hashes
it with :func:`node.ledger.vouchers.query_hash` (SHA-256 of the normalised
text), so a prover's fingerprint key sent as the prompt, or as the last user
message, hashes exactly as the key in its claim.

**How chat messages become a prompt** for the embedded engine: with the
tokenizer's chat template when it has one; without one (the tiny and base
models OML fingerprints) the messages' contents joined by newlines, so
``[system S, user K]`` is ``S + "\\n" + K`` -- the same text as
:func:`oml.prompts.wrap_prompt` -- and a single user message is the key itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Errors: OpenAI's ``error.type`` values, mapped from the status we answer with.
INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
RATE_LIMIT = "rate_limit_exceeded"
INSUFFICIENT_QUOTA = "insufficient_quota"
SERVER_ERROR = "server_error"
UNAVAILABLE = "service_unavailable"

SSE_DONE = b"data: [DONE]\n\n"
#: Roles a chat message may have (OpenAI's ``developer`` is a newer name for ``system``).
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_STOP_SEQUENCES = 4


class ApiError(Exception):
    """An error answered to the client as ``{"error": {message, type, param, code}}``.

    ``status`` is the HTTP status. Raised anywhere below the app; the app
    turns it into the response, so a handler never builds error bodies itself.
    """

    def __init__(self, status: int, message: str, *, type_: str = INVALID_REQUEST,
                 param: str | None = None, code: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GenRequest:
    """One parsed completions or chat request: what the engine needs and what is billed."""

    kind: str
    """``completion`` or ``chat``."""
    model: str
    prompt: str = ""
    """Completions: the prompt. Chat: empty (the engine renders ``messages``)."""
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False
    echo: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The decoded body (proxy mode forwards it)."""

    @property
    def query_text(self) -> str:
        """The text a permission covers: the prompt, or the last user message."""
        if self.kind == "completion":
            return self.prompt
        for msg in reversed(self.messages):
            if msg.role == "user":
                return msg.content
        raise bad_request("messages must contain a user message", "messages")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def parse_json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 400 when it is not UTF-8 JSON or not an object.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    return data


def _number(data: Mapping[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"{name} must be a number", name)
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo} and {hi}, got {value}", name)
    return float(value)


def _int(data: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int
         ) -> int | None:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", name)
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo} and {hi}, got {value}", name)
    return value


def _stop(data: Mapping[str, Any]) -> tuple[str, ...]:
    value = data.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value) \
            or len(value) > MAX_STOP_SEQUENCES:
        raise bad_request(f"stop must be a non-empty string or a list of at most "
                          f"{MAX_STOP_SEQUENCES} non-empty strings", "stop")
    return tuple(value)


def _model(data: Mapping[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required (a string)", "model")
    return model


def _common(data: Mapping[str, Any], kind: str, max_new_tokens: int, default_max: int
            ) -> dict[str, Any]:
    """Fields completions and chat share; ``max_tokens`` above the cap is refused."""
    _int(data, "n", 1, 1, 1)  # one choice per request: a permission covers one answer
    name = "max_tokens"
    if kind == "chat" and data.get("max_completion_tokens") is not None:
        name = "max_completion_tokens"
    max_tokens = _int(data, name, min(default_max, max_new_tokens), 1, max_new_tokens)
    stream = data.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("stream must be a boolean", "stream")
    options = data.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        if not stream:
            raise bad_request("stream_options is only allowed when stream is true",
                              "stream_options")
        flag = options.get("include_usage", False)
        if not isinstance(flag, bool):
            raise bad_request("stream_options.include_usage must be a boolean",
                              "stream_options")
        include_usage = flag
    return {"model": _model(data), "max_tokens": max_tokens,
            "temperature": _number(data, "temperature", 1.0, 0.0, 2.0),
            "top_p": _number(data, "top_p", 1.0, 0.0, 1.0), "stop": _stop(data),
            "seed": _int(data, "seed", None, -(2**63), 2**63 - 1), "stream": stream,
            "include_usage": include_usage, "raw": data}


def parse_completion(data: Mapping[str, Any], *, max_new_tokens: int) -> GenRequest:
    """A ``/v1/completions`` body. The prompt must be one string (or a list of one).

    Raises:
        ApiError: 400 naming the offending field.
    """
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("prompt must be a string (token-id prompts and batches of prompts "
                          "are not supported)", "prompt")
    echo = data.get("echo", False)
    if not isinstance(echo, bool):
        raise bad_request("echo must be a boolean", "echo")
    # OpenAI's default for completions is 16 new tokens
    return GenRequest(kind="completion", prompt=prompt, echo=echo,
                      **_common(data, "completion", max_new_tokens, 16))


def _content(value: Any, where: str) -> str:
    """A message's content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" \
                    or not isinstance(part.get("text"), str):
                raise bad_request(f"{where}: only text content parts are supported", "messages")
            parts.append(part["text"])
        return "".join(parts)
    if value is None:
        return ""
    raise bad_request(f"{where}: content must be a string or a list of text parts",
                      "messages")


def parse_chat(data: Mapping[str, Any], *, max_new_tokens: int) -> GenRequest:
    """A ``/v1/chat/completions`` body.

    Raises:
        ApiError: 400 naming the offending field (no user message included).
    """
    raw = data.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty list", "messages")
    messages = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or msg.get("role") not in CHAT_ROLES:
            raise bad_request(f"messages[{i}] must be an object with a role in "
                              f"{sorted(CHAT_ROLES)}", "messages")
        messages.append(ChatMessage(role=msg["role"],
                                    content=_content(msg.get("content"), f"messages[{i}]")))
    req = GenRequest(kind="chat", messages=tuple(messages),
                     **_common(data, "chat", max_new_tokens, max_new_tokens))
    req.query_text  # noqa: B018 - raises 400 when there is no user message
    return req


def render_chat_plain(messages: tuple[ChatMessage, ...]) -> str:
    """The prompt for a model without a chat template: contents joined by newlines."""
    return "\n".join(m.content for m in messages)


# ------------------------------------------------------------------ responses


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_json(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


def completion_response(req: GenRequest, *, id_: str, created: int, text: str,
                        finish_reason: str, usage: Usage) -> dict[str, Any]:
    """The whole (non-streamed) answer, shaped like OpenAI's."""
    if req.kind == "completion":
        return {"id": id_, "object": "text_completion", "created": created, "model": req.model,
                "choices": [{"index": 0, "text": (req.prompt + text) if req.echo else text,
                             "logprobs": None, "finish_reason": finish_reason}],
                "usage": usage.to_json()}
    return {"id": id_, "object": "chat.completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": finish_reason}],
            "usage": usage.to_json()}


def chunk(req: GenRequest, *, id_: str, created: int, text: str | None,
          finish_reason: str | None = None, first: bool = False) -> dict[str, Any]:
    """One streamed chunk with a piece of text (or only the finish reason).

    With ``include_usage`` every chunk carries ``"usage": null`` and a last
    chunk with empty ``choices`` carries the counts, as OpenAI streams do.
    """
    if req.kind == "completion":
        out: dict[str, Any] = {
            "id": id_, "object": "text_completion", "created": created, "model": req.model,
            "choices": [{"index": 0, "text": text or "", "logprobs": None,
                         "finish_reason": finish_reason}]}
    else:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        out = {"id": id_, "object": "chat.completion.chunk", "created": created,
               "model": req.model,
               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish_reason}]}
    if req.include_usage:
        out["usage"] = None
    return out


def usage_chunk(req: GenRequest, *, id_: str, created: int, usage: Usage) -> dict[str, Any]:
    kind = "text_completion" if req.kind == "completion" else "chat.completion.chunk"
    return {"id": id_, "object": kind, "created": created, "model": req.model, "choices": [],
            "usage": usage.to_json()}


def sse(obj: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``obj`` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n"


def models_response(names: list[str], *, created: int, owned_by: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": n, "object": "model", "created": created,
                                        "owned_by": owned_by} for n in names]}


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` cut before the first stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


__all__ = ["ApiError", "ChatMessage", "GenRequest", "SSE_DONE", "Usage", "apply_stop",
           "bad_request", "chunk", "completion_response", "models_response", "parse_chat",
           "parse_completion", "parse_json_body", "render_chat_plain", "sse", "usage_chunk"]
