"""The gateway's end users: API keys, per-key rate limits and token budgets, usage.

Keys come from ``[roles.host] api_keys`` (secrets; named ``config-1``, ...)
and from ``api_keys_file``, a JSON file::

    {"keys": [{"key": "sk-alice-...", "name": "alice", "rpm": 120,
               "budget_tokens": 1000000}]}

``rpm`` (requests per minute, a sliding 60 s window) and ``budget_tokens``
(prompt + completion tokens over the key's lifetime) default to the
section's ``rate_limit_rpm`` / ``budget_tokens``; 0 means unlimited. Keys
are held only as SHA-256 digests, so a lookup does not compare secrets byte
by byte and a memory dump of the ring shows no key.

Usage is counted in memory and written to the role's LMDB by
:meth:`UsageBook.flush` (every second and at shutdown): a crash loses at
most the last second of counts, never a permission string.
"""

from __future__ import annotations

import collections
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .openai_api import INVALID_REQUEST, ApiError
from .store import HostStore, KeyUsage

WINDOW_S = 60.0


class KeyFileError(ValueError):
    """The API key file is unreadable or malformed (the message names the entry)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    rpm: int
    """Requests per minute; 0 = unlimited."""
    budget_tokens: int
    """Lifetime prompt + completion tokens; 0 = unlimited."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _nonneg(entry: dict, name: str, default: int, where: str) -> int:
    value = entry.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KeyFileError(f"{where}: {name} must be a non-negative integer")
    return value


def load_key_file(path: Path, *, default_rpm: int, default_budget: int
                  ) -> list[tuple[str, ApiKey]]:
    """``(secret, key)`` pairs from a key file (see the module docstring).

    Raises:
        KeyFileError: unreadable, not JSON, or an entry without a key or name.
    """
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError(f"cannot read API key file {path}: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise KeyFileError(f"{path}: expected {{\"keys\": [...]}}")
    out = []
    for i, entry in enumerate(entries):
        where = f"{path} keys[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) \
                or not entry["key"] or not isinstance(entry.get("name"), str) \
                or not entry["name"]:
            raise KeyFileError(f"{where}: needs a non-empty \"key\" and \"name\"")
        out.append((entry["key"], ApiKey(entry["name"],
                                         _nonneg(entry, "rpm", default_rpm, where),
                                         _nonneg(entry, "budget_tokens", default_budget,
                                                 where))))
    return out


class KeyRing:
    """Who may call the gateway. ``require=False`` lets requests without a key in
    as the user ``anonymous`` (for a gateway behind the operator's own auth); with
    no keys at all, every request is ``anonymous`` whatever key it sends."""

    def __init__(self, keys: Iterable[tuple[str, ApiKey]], *, require: bool = True,
                 anonymous: ApiKey | None = None) -> None:
        self._keys: dict[bytes, ApiKey] = {}
        for secret, key in keys:
            if not secret:
                raise KeyFileError(f"API key {key.name!r} is empty")
            self._keys[_digest(secret)] = key
        self._require = require
        self._anonymous = anonymous or ApiKey("anonymous", 0, 0)

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key named by an ``Authorization: Bearer <key>`` header.

        Raises:
            ApiError: 401 ``invalid_api_key`` when missing (and required) or unknown.
        """
        if not self._require and not self._keys:
            return self._anonymous  # an open gateway (the bare engine): any key will do
        if not authorization:
            if not self._require:
                return self._anonymous
            raise ApiError(401, "You didn't provide an API key. Send it as "
                                "'Authorization: Bearer YOUR_KEY'.", type_=INVALID_REQUEST,
                           code="invalid_api_key")
        scheme, _, secret = authorization.partition(" ")
        key = self._keys.get(_digest(secret.strip())) if scheme.lower() == "bearer" else None
        if key is None:
            raise ApiError(401, "Incorrect API key provided.", type_=INVALID_REQUEST,
                           code="invalid_api_key")
        return key


class RateLimiter:
    """Requests per minute per key, over a sliding window; the clock is injected."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[str, collections.deque[float]] = {}

    def check(self, key: ApiKey) -> None:
        """Count one request of ``key``.

        Raises:
            ApiError: 429 ``rate_limit_exceeded`` (with a ``Retry-After`` header) when over ``rpm``.
        """
        if key.rpm == 0:
            return
        now = self._clock()
        seen = self._seen.setdefault(key.name, collections.deque())
        while seen and seen[0] <= now - WINDOW_S:
            seen.popleft()
        if len(seen) >= key.rpm:
            wait = max(1, int(seen[0] + WINDOW_S - now + 0.999))
            raise ApiError(429, f"Rate limit reached for {key.name}: {key.rpm} requests per "
                                f"minute. Try again in {wait}s.", type_="requests",
                           code="rate_limit_exceeded", headers={"retry-after": str(wait)})
        seen.append(now)


class UsageBook:
    """Usage per key name: durable totals from the store plus what is not flushed yet."""

    def __init__(self, store: HostStore | None) -> None:
        self._store = store
        self._totals: dict[str, KeyUsage] = dict(store.usage()) if store else {}
        self._unflushed: dict[str, KeyUsage] = {}

    def add(self, name: str, delta: KeyUsage) -> None:
        self._totals[name] = self._totals.get(name, KeyUsage()).plus(delta)
        self._unflushed[name] = self._unflushed.get(name, KeyUsage()).plus(delta)

    def get(self, name: str) -> KeyUsage:
        return self._totals.get(name, KeyUsage())

    def all(self) -> dict[str, KeyUsage]:
        return dict(self._totals)

    def check_budget(self, key: ApiKey) -> None:
        """Raises ApiError 402 ``budget_exceeded`` once the key has used its token budget."""
        if key.budget_tokens and self.get(key.name).total_tokens >= key.budget_tokens:
            raise ApiError(402, f"API key {key.name!r} has used its budget of "
                                f"{key.budget_tokens} tokens.", type_="insufficient_quota",
                           code="budget_exceeded")

    def flush(self) -> None:
        if self._store is None or not self._unflushed:
            return
        pending, self._unflushed = self._unflushed, {}
        for name, delta in pending.items():
            self._store.add_usage(name, delta)


__all__ = ["ApiKey", "KeyFileError", "KeyRing", "RateLimiter", "UsageBook", "load_key_file"]
