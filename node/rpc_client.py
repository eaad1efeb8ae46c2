"""A small JSON-RPC 2.0 client over HTTP, for the CLI, the testnet launcher and tests.

Synchronous (httpx.Client) because every caller is a short-lived command or
a test polling with a deadline; the async daemon never calls another node's
RPC. Errors are typed so a caller can tell "the node is not there" from "the
node said no":

- :class:`RpcUnavailable`: no HTTP answer (refused, timeout, not JSON-RPC).
- :class:`RpcError`: the node answered with a JSON-RPC error object.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Self, TypeVar

import httpx

DEFAULT_RPC = "http://127.0.0.1:26657"

T = TypeVar("T")


class RpcClientError(Exception):
    """Base of the client's errors."""


class RpcUnavailable(RpcClientError):
    """The node did not answer with a JSON-RPC response (down, timeout, bad HTTP)."""


class RpcError(RpcClientError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}" + (f" ({data})" if data else ""))
        self.code = code
        self.message = message
        self.data = data


def normalize_url(url: str) -> str:
    """Accept ``host:port`` as well as a full URL."""
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/") + "/"


class RpcClient:
    """Call JSON-RPC methods on one node: ``client.call("status")``."""

    def __init__(self, url: str = DEFAULT_RPC, *, timeout: float = 10.0) -> None:
        self.url = normalize_url(url)
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, params: dict[str, Any] | list[Any] | None = None,
             *, timeout: float | None = None) -> Any:
        """Call ``method`` and return its ``result``.

        Raises:
            RpcUnavailable: no usable HTTP/JSON-RPC answer.
            RpcError: the node returned an error object.
        """
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            body["params"] = params
        try:
            kwargs: dict[str, Any] = {"json": body}
            if timeout is not None:
                kwargs["timeout"] = timeout
            resp = self._http.post(self.url, **kwargs)
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None
        try:
            data = resp.json()
        except ValueError:
            raise RpcUnavailable(f"{self.url}: HTTP {resp.status_code}, not JSON") from None
        if not isinstance(data, dict):
            raise RpcUnavailable(f"{self.url}: unexpected response {data!r:.200}")
        if "error" in data and data["error"] is not None:
            err = data["error"]
            if not isinstance(err, dict):
                raise RpcUnavailable(f"{self.url}: malformed error {err!r:.200}")
            raise RpcError(int(err.get("code", 0)), str(err.get("message", "")),
                           err.get("data"))
        if "result" not in data:
            raise RpcUnavailable(f"{self.url}: response has neither result nor error")
        return data["result"]

    def post_raw(self, content: bytes, *, headers: dict[str, str] | None = None
                 ) -> httpx.Response:
        """POST raw bytes (tests use it to send malformed requests)."""
        try:
            return self._http.post(self.url, content=content,
                                   headers=headers or {"content-type": "application/json"})
        except httpx.HTTPError as exc:
            raise RpcUnavailable(f"{self.url}: {type(exc).__name__}: {exc}") from None

    # --- typed conveniences -------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def height(self) -> int:
        return int(self.status()["sync_info"]["latest_block_height"])

    def healthy(self) -> bool:
        """True if the node answers ``health``; never raises."""
        try:
            self.call("health", timeout=2.0)
        except RpcClientError:
            return False
        return True


def wait_until(predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.1,
               what: str = "condition") -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes.

    Exceptions of type :class:`RpcClientError` inside the predicate count as
    "not yet" (a node that is restarting refuses connections for a while).

    Raises:
        TimeoutError: naming ``what`` and the last error seen.
    """
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except RpcClientError as exc:
            last_err = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f" (last error: {last_err})" if last_err else ""))
        time.sleep(interval)


__all__ = ["DEFAULT_RPC", "RpcClient", "RpcClientError", "RpcError", "RpcUnavailable",
           "normalize_url", "wait_until"]
