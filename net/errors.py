"""Typed errors of the transport.

Three kinds of failure are kept apart, as STYLE.md asks:

* :class:`NetUsageError` -- our own misuse (bad topic, oversized outgoing
  message, transport not running). Fix the caller.
* Peer failures the caller must expect on any network call
  (:class:`PeerUnreachable`, :class:`RequestTimeout`, :class:`RemoteError`,
  :class:`ProtocolViolation`). Retry elsewhere, or score the peer.
* Everything else is a bug and propagates.

All of them derive from :class:`NetError`, so a caller can catch the family.
"""

from __future__ import annotations


class NetError(Exception):
    """Base of every error this package raises on purpose."""


class NetUsageError(NetError, ValueError):
    """The caller misused the transport (a local bug, not a peer's fault)."""


class MessageTooLarge(NetUsageError):
    """An outgoing message exceeds the configured size cap; nothing was sent.

    Incoming oversize data is never raised to the caller as this error: it is
    dropped (gossip) or reported as :class:`ProtocolViolation` (a response).
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit}-byte cap")
        self.size = size
        self.limit = limit


class ListenFailed(NetError, OSError):
    """The host could not listen on its configured address (e.g. port in use).

    py-libp2p only logs this and carries on without a listener; the
    transport checks and raises instead, because a node nobody can dial is
    broken in a way that must stop start-up.
    """

    def __init__(self, addr: str) -> None:
        super().__init__(f"could not listen on {addr} (address in use or not local?)")
        self.addr = addr


class PeerUnreachable(NetError):
    """No connection to the peer could be made or kept for this operation."""

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f"peer {peer} unreachable: {reason}")
        self.peer = peer
        self.reason = reason


class RequestTimeout(NetError):
    """The peer did not complete the exchange within the deadline."""

    def __init__(self, peer: str, protocol: str, timeout: float) -> None:
        super().__init__(f"request to {peer} on {protocol} timed out after {timeout:g}s")
        self.peer = peer
        self.protocol = protocol
        self.timeout = timeout


class RemoteError(NetError):
    """The peer received the request and answered with an error.

    ``code`` is one of the ``ERR_*`` constants of :mod:`net.framing` (below
    100) or an application code (100 and above) chosen by the handler through
    :class:`HandlerError`.
    """

    def __init__(self, peer: str, protocol: str, code: int, message: str) -> None:
        super().__init__(f"{peer} on {protocol} answered error {code}: {message}")
        self.peer = peer
        self.protocol = protocol
        self.code = code
        self.message = message


class ProtocolViolation(NetError):
    """The peer sent bytes that break our framing (bad header, hash, size).

    On an inbound stream this is logged and counted, and the stream is reset;
    on an outbound request it is raised to the caller, who may score the peer.
    """

    def __init__(self, reason: str, peer: str | None = None) -> None:
        super().__init__(f"protocol violation{f' by {peer}' if peer else ''}: {reason}")
        self.reason = reason
        self.peer = peer


class StreamClosed(NetError):
    """The peer ended a bulk stream cleanly, between two frames.

    Whether that is normal is the protocol's call: LIBP2P.md warns that a
    peer killed mid-transfer can look like a clean EOF on yamux, so a
    protocol that expects N more frames must treat this as a failure.
    """

    def __init__(self, peer: str, protocol: str) -> None:
        super().__init__(f"{peer} closed its {protocol} stream")
        self.peer = peer
        self.protocol = protocol


class HandlerError(Exception):
    """Raised by a request or stream handler to answer the peer with a typed error.

    The requester gets :class:`RemoteError` with the same ``code`` and
    ``message``. Any other exception from a handler is logged as a bug and
    answered with ``ERR_HANDLER_FAILED`` and no detail (no internals leak).
    """

    def __init__(self, code: int, message: str) -> None:
        if not 100 <= code <= 0xFFFF:
            raise ValueError("application error codes are 100..65535")
        super().__init__(f"error {code}: {message}")
        self.code = code
        self.message = message
