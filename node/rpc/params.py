"""Parameter types: each parses an untrusted JSON value and describes itself as JSON Schema.

One object does both jobs so the dispatcher's checks and the ``rpc.discover``
document cannot disagree. ``parse`` raises only :class:`InvalidParams` with a
message naming the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import InvalidParams

_HEX_RE = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")
_DEC_RE = re.compile(r"^[0-9]{1,20}$")


class ParamType(Protocol):
    def parse(self, value: Any, name: str) -> Any: ...

    def schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class HexBytes:
    """Bytes given as hex text (``0x`` prefix and upper case accepted)."""

    min_size: int = 0
    max_size: int = 1 << 20

    def parse(self, value: Any, name: str) -> bytes:
        if not isinstance(value, str) or not _HEX_RE.match(value):
            raise InvalidParams(f"{name}: expected hex string")
        raw = bytes.fromhex(value.removeprefix("0x"))
        if not self.min_size <= len(raw) <= self.max_size:
            if self.min_size == self.max_size:
                raise InvalidParams(f"{name}: expected {self.min_size} bytes, got {len(raw)}")
            raise InvalidParams(f"{name}: expected {self.min_size}..{self.max_size} bytes, "
                                f"got {len(raw)}")
        return raw

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": _HEX_RE.pattern,
                "minLength": 2 * self.min_size, "maxLength": 2 + 2 * self.max_size,
                "description": f"{self.min_size}..{self.max_size} bytes as hex"
                if self.min_size != self.max_size else f"{self.min_size} bytes as hex"}


@dataclass(frozen=True, slots=True)
class Integer:
    """An integer in [lo, hi], as a JSON integer or a decimal string (CometBFT clients send
    heights as strings)."""

    lo: int = 0
    hi: int = 2**64 - 1

    def parse(self, value: Any, name: str) -> int:
        if isinstance(value, str) and _DEC_RE.match(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParams(f"{name}: expected integer")
        if not self.lo <= value <= self.hi:
            raise InvalidParams(f"{name}: {value} outside [{self.lo}, {self.hi}]")
        return value

    def schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "integer", "minimum": self.lo, "maximum": self.hi},
                          {"type": "string", "pattern": _DEC_RE.pattern}]}


@dataclass(frozen=True, slots=True)
class Text:
    max_len: int = 1024

    def parse(self, value: Any, name: str) -> str:
        if not isinstance(value, str):
            raise InvalidParams(f"{name}: expected string")
        if len(value) > self.max_len:
            raise InvalidParams(f"{name}: longer than {self.max_len} characters")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_len}


@dataclass(frozen=True, slots=True)
class TextList:
    """A JSON array of 1..``max_items`` strings, each at most ``max_len`` characters."""

    max_items: int = 64
    max_len: int = 1024

    def parse(self, value: Any, name: str) -> list[str]:
        if not isinstance(value, list) or not 1 <= len(value) <= self.max_items:
            raise InvalidParams(f"{name}: expected an array of 1..{self.max_items} strings")
        item = Text(self.max_len)
        return [item.parse(v, f"{name}[{i}]") for i, v in enumerate(value)]

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": self.max_items,
                "items": Text(self.max_len).schema()}


@dataclass(frozen=True, slots=True)
class Boolean:
    """A JSON ``true`` or ``false`` (no strings or numbers: a typo must not mean yes)."""

    def parse(self, value: Any, name: str) -> bool:
        if not isinstance(value, bool):
            raise InvalidParams(f"{name}: expected true or false")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True, slots=True)
class Param:
    """One named parameter of a method (position = order in the method's tuple)."""

    name: str
    type: ParamType
    description: str
    required: bool = True


def bind_params(specs: tuple[Param, ...], raw: Any) -> dict[str, Any]:
    """Match raw JSON-RPC ``params`` (object, array or absent) to ``specs``; parse each.

    An object binds by name (unknown names are an error, so a typo is not
    silently ignored); an array binds by position (more items than params is
    an error). Missing optional params, and explicit ``null`` for them, are
    left out so the handler's default applies.

    Raises:
        InvalidParams: anything about the params is wrong.
    """
    if raw is None:
        given: dict[str, Any] = {}
    elif isinstance(raw, dict):
        known = {p.name for p in specs}
        unknown = sorted(k for k in raw if k not in known)
        if unknown:
            raise InvalidParams(f"unknown param(s): {', '.join(unknown)}")
        given = raw
    elif isinstance(raw, list):
        if len(raw) > len(specs):
            raise InvalidParams(f"expected at most {len(specs)} params, got {len(raw)}")
        given = {p.name: v for p, v in zip(specs, raw)}
    else:  # pragma: no cover - the dispatcher rejects other types as invalid requests
        raise InvalidParams("params must be an object or an array")
    out: dict[str, Any] = {}
    for p in specs:
        value = given.get(p.name)
        if value is None:
            if p.required:
                raise InvalidParams(f"missing required param: {p.name}")
            continue
        out[p.name] = p.type.parse(value, p.name)
    return out
