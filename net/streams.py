"""Bulk streams: many frames each way on one libp2p stream, for large transfers.

Request/response (:mod:`net.reqresp`) carries one frame each way and caps it
at ``max_msg_bytes``; fetching a 100 MB blob that way costs a stream
negotiation and a round trip per chunk (LIBP2P.md: 42-46 MB/s with 1 MiB
chunks) against 96 MB/s for one long stream. A :class:`FrameStream` is that
long stream: either side sends and receives frames (the framing of
:mod:`net.framing`, kinds DATA / DATA_UNHASHED / ERROR) back to back, and
what the frames mean is the application protocol's business.

Every send and receive runs under a deadline (a frozen peer hangs reads for
ever otherwise), every received frame is checked against a size cap before a
payload byte is read, and callers see only :class:`FrameStream` and the
:mod:`net.errors` types, never a libp2p stream.

Serving side: :meth:`Streams.set_handler` registers ``await handler(peer,
stream)``; at most ``max_streams`` handlers run per protocol and
``max_streams_per_peer`` per peer and protocol, and a stream over either
limit is answered with an ERROR frame (``ERR_BUSY``) and closed. When the
handler returns, our side of the stream is closed (the peer's ``receive``
raises :class:`StreamClosed`); a :class:`HandlerError` is sent to the peer
as an ERROR frame; a peer failure inside the handler (timeout, broken
stream, bad frame) resets the stream; any other exception is logged as a
bug and answered with ``ERR_HANDLER_FAILED``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

from . import framing
from ._lib import BaseLibp2pError, IHost, INetStream, TProtocol
from .errors import (
    HandlerError,
    NetError,
    NetUsageError,
    PeerUnreachable,
    ProtocolViolation,
    RemoteError,
    RequestTimeout,
    StreamClosed,
)
from .reqresp import ReqResp, check_protocol, parse_peer_id
from .streamio import close_quietly, reset_quietly
from .types import ProtocolStats

log = logging.getLogger(__name__)

StreamHandler = Callable[[str, "FrameStream"], Awaitable[None]]
"""``await handler(peer_id, stream)``: serve one inbound bulk stream."""

MAX_FRAME_LIMIT = 0xFFFFFFFF
_STREAM_ERRORS = (BaseLibp2pError, trio.BrokenResourceError, trio.ClosedResourceError, EOFError)
_ERROR_FRAME_CAP = 1024


class _Broken(Exception):
    """The libp2p stream failed or ended mid-frame (internal; mapped to NetError)."""


class FrameStream:
    """One bulk stream to a peer: frames in both directions, each under a deadline.

    Not built by callers: :meth:`net.Transport.open_stream` yields one and a
    stream handler receives one. One task may send while another receives.
    Concurrent sends (or receives) take turns on a lock, because yamux
    splits a large write into frames that two writers would interleave.
    """

    def __init__(
        self,
        stream: INetStream,
        *,
        peer_id: str,
        protocol: str,
        max_frame_bytes: int,
        timeout: float,
        stats: ProtocolStats,
    ) -> None:
        self._stream = stream
        self.peer_id = peer_id
        """The remote peer (base58)."""
        self.protocol = protocol
        self.max_frame_bytes = max_frame_bytes
        """Cap on frames sent, and default cap on frames received."""
        self.timeout = timeout
        """Default deadline of one send or receive, in seconds."""
        self._stats = stats
        self._write_closed = False
        self._remote_done = False  # the peer's side ended: EOF, ERROR frame or reset
        self._failed = False
        self._send_lock = trio.Lock()
        self._receive_lock = trio.Lock()

    @property
    def remote_done(self) -> bool:
        """Whether the peer has ended its side (we saw its EOF or ERROR frame)."""
        return self._remote_done

    # ------------------------------------------------------------------ send

    async def send(
        self,
        data: bytes | bytearray | memoryview,
        *,
        hashed: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Write one frame within ``timeout`` (default :attr:`timeout`).

        ``hashed=False`` sends a DATA_UNHASHED frame: the receiver skips the
        frame hash, for payloads it verifies itself (chunks against a
        manifest). Returns once the bytes are handed to the connection.

        Raises:
            MessageTooLarge: ``data`` is over :attr:`max_frame_bytes` (nothing sent).
            NetUsageError: we already closed our side, or bad ``data``.
            RequestTimeout: the peer did not take the bytes in time (frozen or slow reader).
            PeerUnreachable: the stream was reset or the connection died.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise NetUsageError(f"data must be bytes, got {type(data).__name__}")
        if self._write_closed:
            raise NetUsageError("send on a stream we already closed")
        kind = framing.Kind.DATA if hashed else framing.Kind.DATA_UNHASHED
        header = framing.encode_header(kind, data, self.max_frame_bytes)
        async with self._send_lock:
            await self._write(header + data, timeout)
        self._stats.stream_bytes_out += len(data)

    async def _write(self, raw: bytes, timeout: float | None) -> None:
        deadline = self._deadline(timeout)
        try:
            with trio.fail_after(deadline):
                await self._stream.write(raw)
        except trio.TooSlowError:
            self._failed = True
            raise RequestTimeout(self.peer_id, self.protocol, deadline) from None
        except _STREAM_ERRORS as exc:
            self._failed = True
            raise PeerUnreachable(self.peer_id, f"stream broke on write: {exc!r}") from exc
        except BaseException:  # cancelled mid-frame: the framing is lost; only a reset is safe
            self._failed = True
            raise

    # --------------------------------------------------------------- receive

    async def receive(self, max_bytes: int | None = None, *, timeout: float | None = None) -> bytes:
        """Read one frame within ``timeout`` (default :attr:`timeout`).

        ``max_bytes`` (default :attr:`max_frame_bytes`) caps the payload; a
        longer frame is refused from its header, before its payload is read.

        Raises:
            StreamClosed: the peer closed its side cleanly between frames.
            RemoteError: the peer ended the stream with an ERROR frame
                (its handler raised :class:`HandlerError`, or it was busy).
            ProtocolViolation: bad header, unknown kind, oversize or
                corrupted frame; the stream is reset.
            RequestTimeout: no complete frame in time; the stream is reset.
            PeerUnreachable: the stream was reset or broke mid-frame.
        """
        cap = self.max_frame_bytes if max_bytes is None else max_bytes
        if not isinstance(cap, int) or cap < 0:
            raise NetUsageError("max_bytes must be a non-negative integer")
        if self._remote_done:
            raise StreamClosed(self.peer_id, self.protocol)
        deadline = self._deadline(timeout)
        try:
            with trio.fail_after(deadline):
                async with self._receive_lock:
                    kind, payload = await self._read_frame(max(cap, _ERROR_FRAME_CAP))
        except trio.TooSlowError:
            await self._abort()
            raise RequestTimeout(self.peer_id, self.protocol, deadline) from None
        except _Broken as exc:
            await self._abort()
            raise PeerUnreachable(self.peer_id, f"stream broke: {exc}") from exc
        except ProtocolViolation as exc:
            await self._abort()
            raise ProtocolViolation(exc.reason, self.peer_id) from exc
        except StreamClosed:
            raise
        except BaseException:  # cancelled mid-frame: the framing is lost; only a reset is safe
            self._failed = True
            raise
        if kind is framing.Kind.ERROR:
            self._remote_done = True
            code, message = framing.decode_error(payload)
            raise RemoteError(self.peer_id, self.protocol, code, message)
        if kind not in (framing.Kind.DATA, framing.Kind.DATA_UNHASHED):
            await self._abort()
            raise ProtocolViolation(f"{kind.name} frame on a bulk stream", self.peer_id)
        if len(payload) > cap:
            await self._abort()
            raise ProtocolViolation(f"frame of {len(payload)} bytes over the cap", self.peer_id)
        self._stats.stream_bytes_in += len(payload)
        return payload

    async def _read_frame(self, cap: int) -> tuple[framing.Kind, bytes]:
        first = await self._read_exactly(framing.HEADER_LEN, at_boundary=True)
        header = framing.decode_header(first, cap)
        payload = await self._read_exactly(header.length, at_boundary=False)
        return header.kind, framing.check_payload(header, payload)

    async def _read_exactly(self, n: int, *, at_boundary: bool) -> bytes:
        """``n`` bytes; one read (no copy) when the muxer already holds them all."""
        if n == 0:
            return b""
        parts: list[bytes] = []
        got = 0
        while got < n:
            try:
                part = await self._stream.read(n - got)
            except _STREAM_ERRORS as exc:
                if at_boundary and got == 0 and _is_eof(exc):
                    self._remote_done = True
                    raise StreamClosed(self.peer_id, self.protocol) from None
                raise _Broken(f"after {got} of {n} bytes: {exc!r}") from exc
            if not part:
                if at_boundary and got == 0:
                    self._remote_done = True
                    raise StreamClosed(self.peer_id, self.protocol)
                raise _Broken(f"EOF after {got} of {n} bytes")
            if got == 0 and len(part) == n:
                return part
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    # ---------------------------------------------------------------- ending

    async def close(self) -> None:
        """Half-close: tell the peer we send nothing more (its receive gets StreamClosed).

        Frames the peer still sends can be received. Idempotent.
        """
        if not self._write_closed:
            self._write_closed = True
            with trio.move_on_after(self.timeout):
                try:
                    await self._stream.close_write()
                except _STREAM_ERRORS:
                    pass

    async def reset(self) -> None:
        """Abort both directions at once; unread data on either side is dropped."""
        await self._abort()

    async def send_error(self, code: int, message: str) -> None:
        """End our side with an ERROR frame (the peer's receive raises RemoteError).

        Best effort: a peer that is gone is not an error here.
        """
        if self._write_closed:
            return
        raw = framing.encode_frame(
            framing.Kind.ERROR, framing.encode_error(code, message), _ERROR_FRAME_CAP
        )
        try:
            async with self._send_lock:
                await self._write(raw, None)
        except NetError:
            return
        await self.close()

    async def _abort(self) -> None:
        self._failed = True
        self._write_closed = True
        self._remote_done = True
        await reset_quietly(self._stream)

    async def _finish(self) -> None:
        """Leave the stream: close if both sides ended cleanly, else reset.

        A reset tells a peer still sending that nobody reads any more, so
        its writes fail at once instead of waiting for window updates.
        """
        if self._failed or not self._remote_done:
            await self._abort()
            return
        await self.close()
        await close_quietly(self._stream, self.timeout)

    def _deadline(self, timeout: float | None) -> float:
        deadline = self.timeout if timeout is None else timeout
        if not deadline > 0:
            raise NetUsageError("timeout must be positive")
        return deadline


def _is_eof(exc: BaseException) -> bool:
    """A clean end of the peer's side (not a reset), whatever libp2p called it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, EOFError):  # StreamEOF and MuxedStreamEOF both are
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


@dataclasses.dataclass(slots=True)
class _Served:
    handler: StreamHandler
    max_frame_bytes: int
    max_streams: int
    max_streams_per_peer: int
    running: int = 0
    per_peer: dict[str, int] = dataclasses.field(default_factory=dict)


def check_frame_cap(value: object) -> int:
    """Return ``value`` if it is a usable frame size cap.

    Raises:
        NetUsageError: not an int in 1..2**32-1.
    """
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_FRAME_LIMIT:
        raise NetUsageError(f"max_frame_bytes must be an int in 1..{MAX_FRAME_LIMIT}")
    return value


class Streams:
    """Bulk-stream handlers and outbound bulk streams for one host."""

    def __init__(self, host: IHost, reqresp: ReqResp, *, timeout: float, max_frame_bytes: int):
        self._host = host
        self._reqresp = reqresp  # opens streams (with its retries) and owns the stats table
        self._timeout = timeout
        self._max_frame_bytes = max_frame_bytes
        self._served: dict[str, _Served] = {}

    def set_handler(
        self,
        protocol: str,
        handler: StreamHandler,
        *,
        max_frame_bytes: int | None = None,
        max_streams: int = 16,
        max_streams_per_peer: int = 4,
    ) -> None:
        """See :meth:`net.Transport.set_stream_handler`."""
        check_protocol(protocol)
        if not callable(handler):
            raise NetUsageError("handler must be an async callable")
        cap = check_frame_cap(self._max_frame_bytes if max_frame_bytes is None else max_frame_bytes)
        for name, value in (("max_streams", max_streams), ("per peer", max_streams_per_peer)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise NetUsageError(f"{name} must be a positive integer")
        if self._reqresp.has_handler(protocol):
            raise NetUsageError(f"{protocol} already has a request handler")
        old = self._served.get(protocol)
        served = _Served(handler, cap, max_streams, max_streams_per_peer)
        if old is not None:  # keep the counts of streams still running under the old one
            served.running, served.per_peer = old.running, old.per_peer
        self._served[protocol] = served
        if old is None:

            async def on_stream(stream: INetStream) -> None:
                await self._serve(protocol, stream)

            self._host.set_stream_handler(TProtocol(protocol), on_stream)

    def has_handler(self, protocol: str) -> bool:
        return protocol in self._served

    async def _serve(self, protocol: str, stream: INetStream) -> None:
        """One inbound bulk stream; never raises (except cancellation)."""
        served = self._served[protocol]
        stats = self._reqresp.pstats(protocol)
        peer = stream.muxed_conn.peer_id.to_base58()
        fs = FrameStream(
            stream,
            peer_id=peer,
            protocol=protocol,
            max_frame_bytes=served.max_frame_bytes,
            timeout=self._timeout,
            stats=stats,
        )
        stats.streams_in += 1
        if (
            served.running >= served.max_streams
            or served.per_peer.get(peer, 0) >= served.max_streams_per_peer
        ):
            stats.errors_in += 1
            log.debug("%s: busy; refusing a stream from %s", protocol, peer)
            await fs.send_error(framing.ERR_BUSY, "busy")
            await close_quietly(stream, 1.0)
            return
        served.running += 1
        served.per_peer[peer] = served.per_peer.get(peer, 0) + 1
        try:
            await self._run_handler(served.handler, fs, stats)
        finally:
            served.running -= 1
            left = served.per_peer[peer] - 1
            if left:
                served.per_peer[peer] = left
            else:
                del served.per_peer[peer]

    async def _run_handler(
        self, handler: StreamHandler, fs: FrameStream, stats: ProtocolStats
    ) -> None:
        try:
            await handler(fs.peer_id, fs)
        except HandlerError as exc:
            stats.errors_in += 1
            await fs.send_error(exc.code, exc.message)
            await close_quietly(fs._stream, fs.timeout)
            return
        except ProtocolViolation as exc:
            stats.violations += 1
            log.warning("resetting %s stream from %s: %s", fs.protocol, fs.peer_id, exc.reason)
            await fs.reset()
            return
        except NetError as exc:  # the peer stalled, vanished or hung up early
            stats.errors_in += 1
            log.debug("%s stream from %s ended: %s", fs.protocol, fs.peer_id, exc)
            await fs.reset()
            return
        except Exception:
            stats.errors_in += 1
            log.exception("stream handler for %s failed (peer %s)", fs.protocol, fs.peer_id)
            await fs.send_error(framing.ERR_HANDLER_FAILED, "handler failed")
            await fs.reset()
            return
        # The handler is done: end our side; the peer reads what is left, then EOF.
        await fs.close()
        await close_quietly(fs._stream, fs.timeout)

    @asynccontextmanager
    async def open(
        self,
        peer: str,
        protocol: str,
        *,
        max_frame_bytes: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[FrameStream]:
        """See :meth:`net.Transport.open_stream`."""
        check_protocol(protocol)
        pid = parse_peer_id(peer)
        cap = check_frame_cap(self._max_frame_bytes if max_frame_bytes is None else max_frame_bytes)
        deadline = self._timeout if timeout is None else timeout
        if not isinstance(deadline, (int, float)) or not deadline > 0:
            raise NetUsageError("timeout must be positive")
        stats = self._reqresp.pstats(protocol)
        stats.streams_out += 1
        try:
            with trio.fail_after(deadline):
                stream = await self._reqresp.open_stream(peer, pid, protocol)
        except trio.TooSlowError:
            stats.errors_out += 1
            raise RequestTimeout(peer, protocol, deadline) from None
        except (PeerUnreachable, RemoteError):
            stats.errors_out += 1
            raise
        fs = FrameStream(
            stream,
            peer_id=peer,
            protocol=protocol,
            max_frame_bytes=cap,
            timeout=deadline,
            stats=stats,
        )
        try:
            yield fs
        except BaseException as exc:
            if isinstance(exc, NetError):
                stats.errors_out += 1
            with trio.CancelScope(shield=True):  # bounded: reset gives up after 1 s
                await fs.reset()
            raise
        await fs._finish()
