"""Canonical encoding: msgpack of fixed-order arrays holding only ints and bytes.

Everything that is hashed or signed goes through :func:`encode`, and everything
that arrives from outside goes through :func:`decode`. The value space is
deliberately tiny (int, bytes, list) so that every value has exactly one
encoding: :func:`decode` re-encodes what it parsed and rejects input whose
bytes differ (non-minimal ints, maps, strings, floats, nil, bools, ext types,
trailing bytes). Two nodes that accept the same bytes therefore agree on the
value, and two nodes that build the same value agree on the bytes.

The ``expect_*`` helpers turn a decoded value into a checked field so that
schema code reads as one line per field and never raises anything but
:class:`DecodeError`.
"""

from __future__ import annotations

import msgpack

Value = int | bytes | list["Value"]

#: Hard ceiling for one encoded object; callers pass tighter limits.
MAX_DECODE_BYTES = 64 * 1024 * 1024
#: Nesting deeper than this is never legitimate in our formats.
MAX_DEPTH = 16

U64_MAX = 2**64 - 1
I64_MIN = -(2**63)


class EncodingError(Exception):
    """Base of the encoding errors; a caller may catch this one type."""


class EncodeError(EncodingError):
    """Our own code tried to encode a value outside the canonical value space."""


class DecodeError(EncodingError):
    """Bytes from outside are not a canonical encoding of the expected shape."""


def _check_value(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodeError("value nested too deeply")
    if isinstance(value, bool):  # bool is an int subclass; keep it out
        raise EncodeError("bool is not canonical; use 0/1")
    if isinstance(value, int):
        if not I64_MIN <= value <= U64_MAX:
            raise EncodeError(f"integer out of 64-bit range: {value}")
        return
    if isinstance(value, bytes):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, depth + 1)
        return
    raise EncodeError(f"type {type(value).__name__} is not canonical (int, bytes, list only)")


def encode(value: object) -> bytes:
    """Encode ``value`` (ints, bytes and lists/tuples of them) canonically.

    Raises:
        EncodeError: ``value`` holds another type or an int outside 64 bits.
    """
    _check_value(value, 0)
    return msgpack.packb(value, use_bin_type=True)


def _reject_map(_pairs: object) -> None:
    raise DecodeError("maps are not canonical")


def _reject_ext(_code: int, _data: bytes) -> None:
    raise DecodeError("ext types are not canonical")


def _check_decoded(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError("value nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
        raise DecodeError(f"type {type(value).__name__} is not canonical")
    if isinstance(value, (int, bytes)):
        return
    if isinstance(value, list):
        for item in value:
            _check_decoded(item, depth + 1)
        return
    raise DecodeError(f"type {type(value).__name__} is not canonical")


def decode(data: bytes, max_size: int = MAX_DECODE_BYTES) -> Value:
    """Decode untrusted bytes; raise only :class:`DecodeError`.

    ``max_size`` bounds the input before any parsing, and every length inside
    is bounded by it too, so a short message cannot claim a huge array.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("input must be bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"message of {len(data)} bytes exceeds limit {max_size}")
    if not data:
        raise DecodeError("empty input")
    try:
        value = msgpack.unpackb(
            data,
            raw=True,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_reject_map,
            ext_hook=_reject_ext,
            max_bin_len=len(data),
            max_str_len=len(data),
            max_array_len=len(data),
            max_map_len=0,
            max_ext_len=0,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, ...)
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    _check_decoded(value, 0)
    try:
        again = msgpack.packb(value, use_bin_type=True)
    except Exception as exc:  # pragma: no cover - value already type-checked
        raise DecodeError(f"cannot re-encode: {exc}") from None
    if again != data:
        raise DecodeError("non-canonical encoding")
    return value


# --- schema helpers -------------------------------------------------------


def expect_list(value: Value, length: int | None = None, *, what: str = "value",
                max_length: int | None = None) -> list[Value]:
    """Check that ``value`` is a list of exactly ``length`` items (if given)."""
    if not isinstance(value, list):
        raise DecodeError(f"{what}: expected array, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(value)}")
    if max_length is not None and len(value) > max_length:
        raise DecodeError(f"{what}: {len(value)} items exceed limit {max_length}")
    return value


def expect_int(value: Value, *, what: str = "value", lo: int = 0, hi: int = U64_MAX) -> int:
    """Check that ``value`` is an int within [lo, hi] (unsigned 64-bit by default)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"{what}: expected integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise DecodeError(f"{what}: {value} outside [{lo}, {hi}]")
    return value


def expect_bytes(value: Value, *, what: str = "value", size: int | None = None,
                 max_size: int | None = None) -> bytes:
    """Check that ``value`` is bytes of exactly ``size`` or at most ``max_size``."""
    if not isinstance(value, bytes):
        raise DecodeError(f"{what}: expected bytes, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise DecodeError(f"{what}: {len(value)} bytes exceed limit {max_size}")
    return value


def expect_text(value: Value, *, what: str = "value", max_size: int) -> str:
    """Check that ``value`` is UTF-8 bytes of at most ``max_size`` bytes; return str."""
    raw = expect_bytes(value, what=what, max_size=max_size)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"{what}: not valid UTF-8") from None
