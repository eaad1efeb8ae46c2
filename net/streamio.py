"""Frames on libp2p streams, with a deadline on every operation.

LIBP2P.md: a frozen peer (SIGSTOP) hangs reads forever, and a killed one can
look like a clean EOF; so every read and write here runs under
``trio.fail_after`` and every payload is length- and hash-checked by
:mod:`net.framing`. Stream failures of any libp2p flavour are folded into
:class:`StreamBroken`, so callers handle one type.
"""

from __future__ import annotations

import trio

from . import framing
from ._lib import BaseLibp2pError, INetStream


class StreamBroken(Exception):
    """The stream was reset, closed or hit EOF before a frame completed."""


_STREAM_ERRORS = (BaseLibp2pError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError)


async def read_exactly(stream: INetStream, n: int) -> bytes:
    """Read exactly ``n`` bytes (no deadline of its own; callers wrap it).

    Raises:
        StreamBroken: EOF, reset or error before ``n`` bytes arrived.
    """
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = await stream.read(n - len(buf))
        except _STREAM_ERRORS as exc:
            raise StreamBroken(f"after {len(buf)} of {n} bytes: {exc!r}") from exc
        if not chunk:
            raise StreamBroken(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


async def read_frame(
    stream: INetStream,
    max_bytes: int,
    timeout: float,
    *,
    idle_timeout: float | None = None,
) -> tuple[framing.Kind, bytes]:
    """Read one frame: the header within ``idle_timeout`` (``None``: wait as
    long as the stream lives, for long-lived direct streams), then the payload
    within ``timeout``.

    Raises:
        trio.TooSlowError: a deadline passed.
        StreamBroken: the stream ended or failed mid-frame (or before it).
        ProtocolViolation: bad header, oversize length, or hash mismatch.
    """
    if idle_timeout is None:
        first = await read_exactly(stream, 1)
    else:
        with trio.fail_after(idle_timeout):
            first = await read_exactly(stream, 1)
    with trio.fail_after(timeout):
        header = framing.decode_header(
            first + await read_exactly(stream, framing.HEADER_LEN - 1), max_bytes
        )
        payload = await read_exactly(stream, header.length)
    return header.kind, framing.check_payload(header, payload)


async def write_all(stream: INetStream, data: bytes, timeout: float) -> None:
    """Write ``data`` within ``timeout``.

    Raises:
        trio.TooSlowError: the deadline passed (peer not reading: frozen or slow).
        StreamBroken: the stream was reset or closed.
    """
    with trio.fail_after(timeout):
        try:
            await stream.write(data)
        except _STREAM_ERRORS as exc:
            raise StreamBroken(repr(exc)) from exc


async def close_quietly(stream: INetStream, timeout: float) -> None:
    """Half-close our side; a stream that is already gone is fine."""
    with trio.move_on_after(timeout):
        try:
            await stream.close()
        except _STREAM_ERRORS:
            pass


async def reset_quietly(stream: INetStream) -> None:
    """Abort the stream in both directions; used after a violation or timeout."""
    with trio.move_on_after(1.0):
        try:
            await stream.reset()
        except _STREAM_ERRORS:
            pass
