"""Asking a deployment through the OpenAI API, as any user of it would.

Plain HTTP (httpx, which runs on trio) rather than a special protocol: a
pirate deployment answers only what an ordinary customer can ask, so that
is all a prover sends. ``completions`` puts the key in ``prompt``; ``chat``
sends it as the one user message (the gateway's query text either way, so
an honest host's permission covers exactly the key a claim names).
Greedy decoding is asked for (``temperature 0``); whether a deployment
obeys is not assumed (see :mod:`.decide`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class ProbeError(Exception):
    """A probe got no usable answer; ``outcome`` is "http_error", "timeout" or "error"."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class ApiSettings:
    api: str = "completions"
    max_tokens: int = 32
    api_key: str = ""
    timeout_s: float = 60.0

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def request_body(api: str, served_model: str, key: str, max_tokens: int) -> dict[str, Any]:
    """The JSON body of one probe."""
    body: dict[str, Any] = {"model": served_model, "max_tokens": max_tokens,
                            "temperature": 0, "n": 1, "stream": False}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": key}]
    else:
        body["prompt"] = key
    return body


def answer_text(api: str, data: Any) -> str:
    """The generated text of an OpenAI response body.

    Raises:
        ProbeError: the body is not a completion of the expected shape.
    """
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if api == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise ProbeError("error", "response is not an OpenAI completion") from None
    if not isinstance(text, str):
        raise ProbeError("error", "completion text is not a string")
    return text


async def _call(http: httpx.AsyncClient, method: str, url: str, settings: ApiSettings,
                json_body: Any = None) -> Any:
    try:
        resp = await http.request(method, url, json=json_body, headers=settings.headers(),
                                  timeout=settings.timeout_s)
    except httpx.TimeoutException as exc:
        raise ProbeError("timeout", f"{type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise ProbeError("error", f"{type(exc).__name__}: {exc}") from None
    if resp.status_code != 200:
        raise ProbeError("http_error", f"HTTP {resp.status_code}: {resp.text[:200]}")
    try:
        return resp.json()
    except ValueError:
        raise ProbeError("error", "response body is not JSON") from None


async def served_models(http: httpx.AsyncClient, base_url: str, settings: ApiSettings
                        ) -> list[str]:
    """The model ids ``GET {base}/models`` lists."""
    data = await _call(http, "GET", base_url.rstrip("/") + "/models", settings)
    try:
        return [str(m["id"]) for m in data["data"]]
    except (KeyError, TypeError):
        raise ProbeError("error", "GET /models answered no model list") from None


async def ask(http: httpx.AsyncClient, base_url: str, served_model: str, key: str,
              settings: ApiSettings) -> str:
    """The deployment's answer to ``key``."""
    path = "/chat/completions" if settings.api == "chat" else "/completions"
    body = request_body(settings.api, served_model, key, settings.max_tokens)
    data = await _call(http, "POST", base_url.rstrip("/") + path, settings, body)
    return answer_text(settings.api, data)


__all__ = ["ApiSettings", "ProbeError", "answer_text", "ask", "request_body", "served_models"]
