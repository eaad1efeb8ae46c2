"""Wire frames for request/response and direct messages (sans-IO).

Every payload on our own protocols travels in one frame::

    version u8 (=1) | kind u8 | length u32 big-endian | sha256(payload) 32 B | payload

Why length *and* hash: LIBP2P.md measured that a peer killed mid-transfer
can look like a clean EOF on yamux, so a short read must be detected (the
length) and so must a corrupted or spliced one (the hash). The length is
checked against the cap before a single payload byte is read, so a peer
cannot make us buffer more than ``max_bytes``.

This module does no I/O; :mod:`net.streamio` reads and writes frames on
libp2p streams with deadlines.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from .errors import MessageTooLarge, ProtocolViolation

VERSION = 1
HEADER = struct.Struct(">BBI32s")
HEADER_LEN = HEADER.size  # 38

# Error codes below 100 belong to the transport; handlers use 100 and above.
ERR_HANDLER_FAILED = 1
"""The handler raised an unexpected exception (a bug on the remote side)."""
ERR_BUSY = 2
"""The remote runs its maximum number of handlers; retry later or elsewhere."""
ERR_RESPONSE_TOO_LARGE = 3
"""The handler's answer exceeded the remote's size cap."""
ERR_HANDLER_TIMEOUT = 4
"""The handler did not finish within the remote's handler deadline."""
ERR_BAD_FRAME = 5
"""The remote could not parse our request frame."""
ERR_UNSUPPORTED = 6
"""The remote has no handler for the protocol (multistream-select said "na")."""
_ERR_MESSAGE_CAP = 512


class Kind(enum.IntEnum):
    """What a frame carries; the first frame of a stream decides its mode."""

    REQUEST = 1
    """One request; the stream then carries one response and closes."""
    DIRECT = 2
    """A one-way message; more DIRECT frames may follow on the same stream."""
    RESPONSE = 3
    """A successful answer to a REQUEST."""
    ERROR = 4
    """A failed answer to a REQUEST, or the end of a bulk stream: u16 code + UTF-8 message."""
    DATA = 5
    """One message on a bulk stream (:mod:`net.streams`); payload hash checked."""
    DATA_UNHASHED = 6
    """One message on a bulk stream whose digest field is zero and not checked.

    For payloads the application verifies itself (a chunk hashed against its
    manifest): hashing it again here would double the receiver's hashing
    work. Nothing is lost on the wire: Noise authenticates every byte and the
    length still catches truncation.
    """


NO_DIGEST = bytes(32)


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed, checked frame header."""

    kind: Kind
    length: int
    digest: bytes


def encode_frame(kind: Kind, payload: bytes, max_bytes: int) -> bytes:
    """Header plus payload, ready to write.

    Raises:
        MessageTooLarge: ``payload`` is over ``max_bytes`` (our misuse).
    """
    if len(payload) > max_bytes:
        raise MessageTooLarge(len(payload), max_bytes)
    return HEADER.pack(VERSION, int(kind), len(payload), hashlib.sha256(payload).digest()) + payload


def encode_header(kind: Kind, payload: bytes | bytearray | memoryview, max_bytes: int) -> bytes:
    """The header of a frame for ``payload`` (hashed unless ``kind`` is DATA_UNHASHED).

    Lets a sender write header and payload without first concatenating them.

    Raises:
        MessageTooLarge: ``payload`` is over ``max_bytes`` (our misuse).
    """
    if len(payload) > max_bytes:
        raise MessageTooLarge(len(payload), max_bytes)
    digest = NO_DIGEST if kind is Kind.DATA_UNHASHED else hashlib.sha256(payload).digest()
    return HEADER.pack(VERSION, int(kind), len(payload), digest)


def decode_header(raw: bytes, max_bytes: int) -> Header:
    """Parse and check a header read from a peer.

    Raises:
        ProtocolViolation: wrong size, unknown version or kind, or a length
            over ``max_bytes``.
    """
    if len(raw) != HEADER_LEN:
        raise ProtocolViolation(f"frame header is {len(raw)} bytes, expected {HEADER_LEN}")
    version, kind, length, digest = HEADER.unpack(raw)
    if version != VERSION:
        raise ProtocolViolation(f"unknown frame version {version}")
    try:
        k = Kind(kind)
    except ValueError:
        raise ProtocolViolation(f"unknown frame kind {kind}") from None
    if length > max_bytes:
        raise ProtocolViolation(f"frame of {length} bytes exceeds the {max_bytes}-byte cap")
    return Header(k, length, digest)


def check_payload(header: Header, payload: bytes) -> bytes:
    """Return ``payload`` if it matches the header's length and hash (no hash
    check for DATA_UNHASHED, whose digest field must be zero).

    Raises:
        ProtocolViolation: truncated or corrupted payload.
    """
    if len(payload) != header.length:
        raise ProtocolViolation(f"payload is {len(payload)} bytes, header said {header.length}")
    if header.kind is Kind.DATA_UNHASHED:
        if header.digest != NO_DIGEST:
            raise ProtocolViolation("unhashed frame with a non-zero digest field")
        return payload
    if hashlib.sha256(payload).digest() != header.digest:
        raise ProtocolViolation("payload hash does not match its header")
    return payload


def encode_error(code: int, message: str) -> bytes:
    """Payload of an ERROR frame; the message is cut to 512 bytes."""
    return struct.pack(">H", code) + message.encode("utf-8", "replace")[:_ERR_MESSAGE_CAP]


def decode_error(payload: bytes) -> tuple[int, str]:
    """(code, message) from an ERROR frame payload.

    Raises:
        ProtocolViolation: shorter than the 2-byte code.
    """
    if len(payload) < 2:
        raise ProtocolViolation("error frame without a code")
    (code,) = struct.unpack(">H", payload[:2])
    return code, payload[2 : 2 + _ERR_MESSAGE_CAP].decode("utf-8", "replace")
