"""Field specs: one object per field type that decodes, checks and encodes.

Transaction bodies and stored records are frozen dataclasses whose fields
are listed, in wire order, with a spec each. ``from_value`` runs every spec
over untrusted input and raises only :class:`TxDecodeError`; ``__post_init__``
runs the same checks on locally built values (raising
:class:`LedgerUsageError`), so an invalid body can never be constructed and
a decoded body is re-encodable by construction.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

from consensus.encoding import U64_MAX, DecodeError, Value

from .errors import LedgerUsageError, TxDecodeError

ADDRESS_SIZE = 20
HASH_SIZE = 32
MAX_MODEL_ID = 64


class Spec:
    """Decode one wire value into a Python value (and back)."""

    def dec(self, v: Value, what: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def enc(self, x: Any) -> Value:
        return x


class UInt(Spec):
    def __init__(self, lo: int = 0, hi: int = U64_MAX) -> None:
        self.lo, self.hi = lo, hi

    def dec(self, v: Value, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TxDecodeError(f"{what}: expected integer, got {type(v).__name__}")
        if not self.lo <= v <= self.hi:
            raise TxDecodeError(f"{what}: {v} outside [{self.lo}, {self.hi}]")
        return v


class Bytes(Spec):
    def __init__(self, lo: int = 0, hi: int = 64 * 1024) -> None:
        self.lo, self.hi = lo, hi

    def dec(self, v: Value, what: str) -> bytes:
        if not isinstance(v, bytes):
            raise TxDecodeError(f"{what}: expected bytes, got {type(v).__name__}")
        if not self.lo <= len(v) <= self.hi:
            if self.lo == self.hi:
                raise TxDecodeError(f"{what}: expected {self.lo} bytes, got {len(v)}")
            raise TxDecodeError(f"{what}: {len(v)} bytes outside [{self.lo}, {self.hi}]")
        return v


class Text(Spec):
    """UTF-8 text carried as bytes; the Python value is ``str``."""

    def __init__(self, hi: int, lo: int = 0) -> None:
        self.bytes = Bytes(lo, hi)

    def dec(self, v: Value, what: str) -> str:
        raw = self.bytes.dec(v, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TxDecodeError(f"{what}: not valid UTF-8") from None

    def enc(self, x: str) -> Value:
        return x.encode("utf-8")


class ListOf(Spec):
    def __init__(self, item: Spec, hi: int) -> None:
        self.item, self.hi = item, hi

    def dec(self, v: Value, what: str) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)):
            raise TxDecodeError(f"{what}: expected array, got {type(v).__name__}")
        if len(v) > self.hi:
            raise TxDecodeError(f"{what}: {len(v)} items exceed limit {self.hi}")
        return tuple(self.item.dec(x, f"{what}[{i}]") for i, x in enumerate(v))

    def enc(self, x: tuple[Any, ...]) -> Value:
        return [self.item.enc(i) for i in x]


class Pair(Spec):
    """A fixed two-item array, e.g. a split ``[address, basis_points]``."""

    def __init__(self, a: Spec, b: Spec) -> None:
        self.a, self.b = a, b

    def dec(self, v: Value, what: str) -> tuple[Any, Any]:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise TxDecodeError(f"{what}: expected a 2-item array")
        return (self.a.dec(v[0], f"{what}.0"), self.b.dec(v[1], f"{what}.1"))

    def enc(self, x: tuple[Any, Any]) -> Value:
        return [self.a.enc(x[0]), self.b.enc(x[1])]


class Tuple(Spec):
    """A fixed-length array of differently typed items, e.g. a claim item
    ``[fp_index, key, output]``."""

    def __init__(self, *items: Spec) -> None:
        self.items = items

    def dec(self, v: Value, what: str) -> tuple[Any, ...]:
        if not isinstance(v, (list, tuple)) or len(v) != len(self.items):
            raise TxDecodeError(f"{what}: expected a {len(self.items)}-item array")
        return tuple(spec.dec(x, f"{what}.{i}") for i, (spec, x)
                     in enumerate(zip(self.items, v, strict=True)))

    def enc(self, x: tuple[Any, ...]) -> Value:
        return [spec.enc(i) for spec, i in zip(self.items, x, strict=True)]


class EmptyOr(Spec):
    """Empty bytes (the field is absent) or a value ``inner`` accepts.

    For an optional fixed-size field such as a model's blob id: a plain
    ``Bytes(0, 32)`` would also accept 1 to 31 bytes, which name nothing.
    """

    def __init__(self, inner: Bytes) -> None:
        self.inner = inner

    def dec(self, v: Value, what: str) -> bytes:
        if isinstance(v, bytes) and not self.inner.lo <= len(v) <= self.inner.hi:
            if v:
                raise TxDecodeError(f"{what}: expected empty or {self._sizes()} bytes, "
                                    f"got {len(v)}")
            return b""
        return self.inner.dec(v, what)

    def _sizes(self) -> str:
        lo, hi = self.inner.lo, self.inner.hi
        return str(lo) if lo == hi else f"{lo}-{hi}"


ADDRESS = Bytes(ADDRESS_SIZE, ADDRESS_SIZE)
HASH = Bytes(HASH_SIZE, HASH_SIZE)
OPT_HASH = EmptyOr(HASH)
BLOB_ID = HASH  # a storage blob id (docs/protocol.md, Blobs): 32 bytes
OPT_BLOB_ID = OPT_HASH
PUBKEY_SIZE = 32
OPT_PUBKEY = EmptyOr(Bytes(PUBKEY_SIZE, PUBKEY_SIZE))  # an Ed25519 public key, or none yet
MODEL_ID = Bytes(1, MAX_MODEL_ID)
U64 = UInt()
BASIS_POINTS = UInt(0, 10_000)


_LAYOUTS: dict[type, tuple[tuple[str, Spec], ...]] = {}


def layout(cls: type) -> tuple[tuple[str, Spec], ...]:
    """``(field name, spec)`` pairs in wire order, computed once per class
    (``dataclasses.fields`` is too slow for the hot path)."""
    try:
        return _LAYOUTS[cls]
    except KeyError:
        result = tuple((f.name, cls.SPECS[f.name]) for f in fields(cls))  # type: ignore[attr-defined]
        _LAYOUTS[cls] = result
        return result


class Schema:
    """Mixin for frozen dataclasses whose fields have specs in ``SPECS``.

    ``SPECS`` maps field name to spec; the wire order is the dataclass
    field order.
    """

    __slots__ = ()
    SPECS: ClassVar[dict[str, Spec]] = {}

    def __post_init__(self) -> None:
        cls = type(self)
        for name, spec in layout(cls):
            value = getattr(self, name)
            try:
                checked = spec.dec(spec.enc(value), f"{cls.__name__}.{name}")
            except (DecodeError, AttributeError, TypeError) as exc:
                raise LedgerUsageError(f"invalid {cls.__name__}.{name}: {exc}") from None
            if checked != value or type(checked) is not type(value):
                object.__setattr__(self, name, checked)  # normalise lists to tuples

    def to_value(self) -> list[Value]:
        return [spec.enc(getattr(self, name)) for name, spec in layout(type(self))]

    @classmethod
    def from_value(cls, v: Value, what: str | None = None) -> Any:
        lay = layout(cls)
        if not isinstance(v, list):
            raise TxDecodeError(f"{what or cls.__name__}: expected array, got {type(v).__name__}")
        if len(v) != len(lay):
            raise TxDecodeError(f"{what or cls.__name__}: expected {len(lay)} fields, "
                                f"got {len(v)}")
        obj = object.__new__(cls)
        for (name, spec), x in zip(lay, v, strict=True):  # checked here: skip __post_init__
            object.__setattr__(obj, name, spec.dec(x, name if what is None else f"{what}.{name}"))
        return obj

    def to_json(self) -> dict[str, Any]:
        return {name: to_json_value(getattr(self, name)) for name, _ in layout(type(self))}


def to_json_value(x: Any) -> Any:
    """bytes -> hex, tuples -> lists, enums -> their name; recursively."""
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).hex()
    if hasattr(x, "to_json"):
        return x.to_json()
    if isinstance(x, (list, tuple)):
        return [to_json_value(i) for i in x]
    if isinstance(x, dict):
        return {k: to_json_value(v) for k, v in x.items()}
    if hasattr(x, "name") and hasattr(x, "value") and isinstance(x.value, int):
        return x.name.lower()
    return x
