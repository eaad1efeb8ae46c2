"""Request/response and one-way direct messages over our own stream protocols.

Request: open a stream, write one REQUEST frame, read one RESPONSE or ERROR
frame, close. A fresh yamux stream per request keeps requests independent
(a slow block fetch never delays a status query).

Direct: one long-lived outbound stream per (peer, protocol) carrying DIRECT
frames back to back, so consensus messages to a validator cost one write,
not a stream negotiation, and arrive in the order they were sent. The
receiver runs the handler for each frame in turn (its result is discarded).
If a write fails on a cached stream, one fresh stream is tried before the
error reaches the caller. Delivery is at most once: a frame written into a
connection that then dies is lost, as with gossip.

Every stream operation has a deadline; inbound handlers are bounded in
number (``max_inbound_requests``; extra requests are answered BUSY, extra
direct messages wait) and in time (``handler_timeout_s``). Malformed input
resets that one stream and is counted; it never reaches the handler.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

import trio

from . import framing
from ._lib import (
    ID,
    BaseLibp2pError,
    IHost,
    INetStream,
    MultiselectClientError,
    ProtocolNotSupportedError,
    TProtocol,
)
from .errors import (
    HandlerError,
    NetUsageError,
    PeerUnreachable,
    ProtocolViolation,
    RemoteError,
    RequestTimeout,
)
from .streamio import StreamBroken, close_quietly, read_frame, reset_quietly, write_all
from .types import ProtocolStats

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[bytes]]
"""``await handler(peer_id, request) -> response``. Raise :class:`HandlerError`
to answer with a typed error. For direct messages the result is ignored."""

MAX_PROTOCOL_LEN = 128
MAX_OPENING_STREAMS_PER_PEER = 16
"""Inbound streams per peer that may be in their first frame or request at once."""
_OPEN_RETRY_PAUSES = (0.0, 0.05, 0.15, 0.0)
"""Pause after each failed stream open; the last entry is never slept."""


def check_protocol(protocol: object) -> str:
    """Return ``protocol`` if it is a usable protocol id (``/name/version``).

    Raises:
        NetUsageError: not a printable string starting with ``/``, at most 128 chars.
    """
    if (
        not isinstance(protocol, str)
        or not protocol.startswith("/")
        or len(protocol) > MAX_PROTOCOL_LEN
        or not protocol.isprintable()
        or any(c.isspace() for c in protocol)
    ):
        raise NetUsageError(f"bad protocol id {protocol!r}; expected e.g. '/oml/status/1'")
    return protocol


def parse_peer_id(peer: object) -> ID:
    """libp2p ID from a base58 peer id string.

    Raises:
        NetUsageError: not a valid base58 peer id.
    """
    if not isinstance(peer, str):
        raise NetUsageError(f"peer id must be a string, got {peer!r}")
    try:
        return ID.from_base58(peer)
    except Exception as exc:  # base58 / multihash raise assorted ValueErrors
        raise NetUsageError(f"bad peer id {peer!r}") from exc


def _not_supported(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ProtocolNotSupportedError):
            return True
        # 0.8.1 folds the per-protocol "na" into a plain MultiselectClientError.
        if isinstance(cur, MultiselectClientError) and str(cur).startswith(
            "protocols not supported"
        ):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class ReqResp:
    """Handlers, outbound requests and direct streams for one host."""

    def __init__(
        self,
        host: IHost,
        *,
        max_msg_bytes: int,
        stream_timeout: float,
        handler_timeout: float,
        max_inbound: int,
    ) -> None:
        self._host = host
        self.max_msg_bytes = max_msg_bytes
        self._stream_timeout = stream_timeout
        self._handler_timeout = handler_timeout
        self._limiter = trio.CapacityLimiter(max_inbound)
        self._handlers: dict[str, Handler] = {}
        self._stats: dict[str, ProtocolStats] = {}
        self._out_direct: dict[tuple[str, str], INetStream] = {}
        self._out_locks: dict[tuple[str, str], trio.Lock] = {}
        self._in_direct: dict[tuple[str, str], INetStream] = {}
        self._opening: dict[str, int] = {}

    def pstats(self, protocol: str) -> ProtocolStats:
        """The live counters of ``protocol`` (created on first use; shared with bulk streams)."""
        return self._stats.setdefault(protocol, ProtocolStats())

    def stats(self) -> dict[str, ProtocolStats]:
        """Copies of the per-protocol counters."""
        return {p: dataclasses.replace(s) for p, s in self._stats.items()}

    # ---------------------------------------------------------------- inbound

    def has_handler(self, protocol: str) -> bool:
        return protocol in self._handlers

    def set_handler(self, protocol: str, handler: Handler) -> None:
        """Serve ``protocol``; replaces an earlier handler for it."""
        check_protocol(protocol)
        if not callable(handler):
            raise NetUsageError("handler must be an async callable")
        first = protocol not in self._handlers
        self._handlers[protocol] = handler
        if first:

            async def on_stream(stream: INetStream) -> None:
                await self._serve(protocol, stream)

            self._host.set_stream_handler(TProtocol(protocol), on_stream)

    async def _serve(self, protocol: str, stream: INetStream) -> None:
        """One inbound stream; never raises (except cancellation).

        A peer may have at most ``MAX_OPENING_STREAMS_PER_PEER`` streams whose
        first frame is still being read or whose request is being served;
        more are reset at once. That bounds what one peer can make us buffer
        (each frame can be ``max_msg_bytes``) before the handler limit applies.
        """
        stats = self.pstats(protocol)
        peer = stream.muxed_conn.peer_id.to_base58()
        if self._opening.get(peer, 0) >= MAX_OPENING_STREAMS_PER_PEER:
            stats.errors_in += 1
            log.warning("%s: too many streams opening at once from %s; reset", protocol, peer)
            await reset_quietly(stream)
            return
        self._opening[peer] = self._opening.get(peer, 0) + 1
        opening = True

        def opened() -> None:
            nonlocal opening
            if opening:
                opening = False
                left = self._opening[peer] - 1
                if left:
                    self._opening[peer] = left
                else:
                    del self._opening[peer]

        try:
            kind, payload = await read_frame(
                stream, self.max_msg_bytes, self._stream_timeout, idle_timeout=self._stream_timeout
            )
            if kind is framing.Kind.REQUEST:
                await self._serve_request(protocol, stream, peer, payload, stats)
            elif kind is framing.Kind.DIRECT:
                opened()  # long-lived; capped by one direct stream per (peer, protocol)
                await self._serve_direct(protocol, stream, peer, payload, stats)
            else:
                raise ProtocolViolation(f"stream opened with a {kind.name} frame", peer)
        except ProtocolViolation as exc:
            stats.violations += 1
            log.warning("resetting %s stream from %s: %s", protocol, peer, exc.reason)
            await reset_quietly(stream)
        except (StreamBroken, trio.TooSlowError) as exc:
            log.debug("%s stream from %s ended: %r", protocol, peer, exc)
            await reset_quietly(stream)
        finally:
            opened()

    async def _call(self, protocol: str, peer: str, payload: bytes) -> tuple[framing.Kind, bytes]:
        """Run the handler under its deadline; map every outcome to a frame."""
        handler = self._handlers[protocol]
        try:
            with trio.move_on_after(self._handler_timeout) as scope:
                result = await handler(peer, payload)
        except HandlerError as exc:
            return framing.Kind.ERROR, framing.encode_error(exc.code, exc.message)
        except Exception:
            log.exception("handler for %s failed on a message from %s", protocol, peer)
            return framing.Kind.ERROR, framing.encode_error(
                framing.ERR_HANDLER_FAILED, "handler failed"
            )
        if scope.cancelled_caught:
            log.warning("handler for %s timed out on a message from %s", protocol, peer)
            return framing.Kind.ERROR, framing.encode_error(
                framing.ERR_HANDLER_TIMEOUT, "handler timed out"
            )
        if not isinstance(result, (bytes, bytearray)):
            log.error("handler for %s returned %s, not bytes", protocol, type(result).__name__)
            return framing.Kind.ERROR, framing.encode_error(
                framing.ERR_HANDLER_FAILED, "handler failed"
            )
        if len(result) > self.max_msg_bytes:
            log.error("handler for %s returned %d bytes, over the cap", protocol, len(result))
            return framing.Kind.ERROR, framing.encode_error(
                framing.ERR_RESPONSE_TOO_LARGE, f"response over {self.max_msg_bytes} bytes"
            )
        return framing.Kind.RESPONSE, bytes(result)

    async def _serve_request(
        self, protocol: str, stream: INetStream, peer: str, payload: bytes, stats: ProtocolStats
    ) -> None:
        stats.requests_in += 1
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            kind, body = framing.Kind.ERROR, framing.encode_error(framing.ERR_BUSY, "busy")
        else:
            try:
                kind, body = await self._call(protocol, peer, payload)
            finally:
                self._limiter.release()
        if kind is framing.Kind.ERROR:
            stats.errors_in += 1
        await write_all(
            stream,
            framing.encode_frame(kind, body, self.max_msg_bytes + 1024),
            self._stream_timeout,
        )
        await close_quietly(stream, self._stream_timeout)

    async def _serve_direct(
        self, protocol: str, stream: INetStream, peer: str, payload: bytes, stats: ProtocolStats
    ) -> None:
        key = (peer, protocol)
        old = self._in_direct.get(key)
        self._in_direct[key] = stream  # one live direct stream per peer and protocol
        if old is not None:
            await reset_quietly(old)
        try:
            while True:
                stats.direct_in += 1
                async with self._limiter:
                    outcome, _ = await self._call(protocol, peer, payload)
                if outcome is framing.Kind.ERROR:  # already logged; nobody to answer
                    stats.errors_in += 1
                # Between messages the stream may idle as long as the connection lives.
                kind, payload = await read_frame(stream, self.max_msg_bytes, self._stream_timeout)
                if kind is not framing.Kind.DIRECT:
                    raise ProtocolViolation(f"{kind.name} frame on a direct stream", peer)
        finally:
            if self._in_direct.get(key) is stream:
                del self._in_direct[key]

    # --------------------------------------------------------------- outbound

    async def open_stream(self, peer: str, pid: ID, protocol: str) -> INetStream:
        """Open a stream (dialling known addresses if needed) within the stream deadline.

        A connection can die between libp2p handing it out and our stream
        opening on it, and py-libp2p keeps a closed connection listed for a
        while, refusing to dial anew meanwhile (seen when a peer restarts).
        So a failure on a listed connection (not a failed dial, not "protocol
        unsupported") gets up to three more tries within the deadline (at
        about 0, 50 and 200 ms), each after dropping closed connections from
        the swarm's records and lifting the peer from the negative dial
        cache, so that the retry dials if it has to.
        """
        with trio.move_on_after(self._stream_timeout):
            had_connection = False
            for attempt, pause in enumerate(_OPEN_RETRY_PAUSES):
                had_connection |= bool(self._host.get_network().get_connections(pid))
                try:
                    return await self._host.new_stream(pid, [TProtocol(protocol)])
                except BaseLibp2pError as exc:
                    if _not_supported(exc):
                        raise RemoteError(
                            peer, protocol, framing.ERR_UNSUPPORTED, "protocol not supported"
                        ) from exc
                    # No connection was ever listed: the dial itself failed;
                    # retrying now would only fail again, more slowly.
                    if not had_connection or attempt == len(_OPEN_RETRY_PAUSES) - 1:
                        reason = str(exc).splitlines()[0] if str(exc) else repr(exc)
                        raise PeerUnreachable(peer, reason) from exc
                    log.debug("stream to %s failed (%s); retrying", peer, exc)
                _forget_dead_connections(self._host, pid)
                await trio.sleep(pause)
        raise PeerUnreachable(peer, f"no stream for {protocol} within {self._stream_timeout:g}s")

    async def request(
        self, peer: str, protocol: str, data: bytes, *, timeout: float | None = None
    ) -> bytes:
        """See :meth:`net.Transport.request`."""
        check_protocol(protocol)
        pid = parse_peer_id(peer)
        frame = framing.encode_frame(framing.Kind.REQUEST, _as_bytes(data), self.max_msg_bytes)
        deadline = self._stream_timeout if timeout is None else timeout
        if not deadline > 0:
            raise NetUsageError("timeout must be positive")
        stats = self.pstats(protocol)
        stats.requests_out += 1
        try:
            with trio.fail_after(deadline):
                stream = await self.open_stream(peer, pid, protocol)
                try:
                    await write_all(stream, frame, deadline)
                    kind, payload = await read_frame(stream, self.max_msg_bytes + 1024, deadline)
                except BaseException:
                    await reset_quietly(stream)
                    raise
                await close_quietly(stream, 1.0)
        except trio.TooSlowError:
            stats.errors_out += 1
            raise RequestTimeout(peer, protocol, deadline) from None
        except StreamBroken as exc:
            stats.errors_out += 1
            raise PeerUnreachable(peer, f"stream broke: {exc}") from exc
        except ProtocolViolation as exc:
            stats.errors_out += 1
            raise ProtocolViolation(exc.reason, peer) from exc
        except (PeerUnreachable, RemoteError):
            stats.errors_out += 1
            raise
        if kind is framing.Kind.RESPONSE:
            if len(payload) > self.max_msg_bytes:
                stats.errors_out += 1
                raise ProtocolViolation(f"response of {len(payload)} bytes over the cap", peer)
            return payload
        if kind is framing.Kind.ERROR:
            stats.errors_out += 1
            code, message = framing.decode_error(payload)
            raise RemoteError(peer, protocol, code, message)
        stats.errors_out += 1
        raise ProtocolViolation(f"answered a request with a {kind.name} frame", peer)

    async def send(self, peer: str, protocol: str, data: bytes) -> None:
        """See :meth:`net.Transport.send`."""
        check_protocol(protocol)
        pid = parse_peer_id(peer)
        frame = framing.encode_frame(framing.Kind.DIRECT, _as_bytes(data), self.max_msg_bytes)
        stats = self.pstats(protocol)
        key = (peer, protocol)
        lock = self._out_locks.setdefault(key, trio.Lock())
        async with lock:
            for attempt in range(2):
                stream = self._out_direct.pop(key, None)
                cached = stream is not None
                try:
                    if stream is None:
                        stream = await self.open_stream(peer, pid, protocol)
                    await write_all(stream, frame, self._stream_timeout)
                except trio.TooSlowError:
                    stats.errors_out += 1
                    if stream is not None:
                        await reset_quietly(stream)
                    raise RequestTimeout(peer, protocol, self._stream_timeout) from None
                except StreamBroken as exc:
                    assert stream is not None
                    await reset_quietly(stream)
                    if cached and attempt == 0:
                        continue  # the cached stream had died; try one fresh stream
                    stats.errors_out += 1
                    raise PeerUnreachable(peer, f"stream broke: {exc}") from exc
                except (PeerUnreachable, RemoteError):
                    stats.errors_out += 1
                    raise
                self._out_direct[key] = stream
                stats.direct_out += 1
                return

    async def close_direct(self, peer: str) -> None:
        """Drop cached direct streams to ``peer`` (after it disconnected)."""
        for key in [k for k in self._out_direct if k[0] == peer]:
            stream = self._out_direct.pop(key)
            await reset_quietly(stream)


def _forget_dead_connections(host: IHost, pid: ID) -> None:
    network = host.get_network()
    remove = getattr(network, "remove_conn", None)
    for conn in network.get_connections(pid):
        if remove is not None and getattr(conn, "is_closed", False):
            remove(conn)  # records only; the connection is already closed
    unblock = getattr(network, "unblock_peer", None)
    if unblock is not None:
        unblock(pid)


def _as_bytes(data: object) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NetUsageError(f"data must be bytes, got {type(data).__name__}")
    return bytes(data)
