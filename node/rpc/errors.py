"""Errors of the JSON-RPC layer and the ONE table mapping them to error codes.

Three families, kept apart on purpose:

* :class:`RPCError` subclasses are what a *client* did wrong at the protocol
  level (bad JSON, bad request object, unknown method, bad params). They carry
  their JSON-RPC code directly.
* :class:`BackendError` subclasses are what the *node* reports about a valid
  request (no such block, tx rejected, timed out, node not ready). The backend
  raises them without knowing about JSON-RPC; :func:`to_error_object` maps
  each to an application code in -32000..-32099.
* Anything else escaping a handler is *our* bug: it becomes -32603 with a
  generic message (details go to the log, never to the client) and the server
  keeps serving.
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

#: Application error codes (JSON-RPC reserves -32000..-32099 for servers).
NOT_FOUND = -32001
TX_REJECTED = -32002
TIMEOUT = -32003
NODE_UNAVAILABLE = -32004
OVERLOADED = -32005
STORAGE_FAILED = -32010


class RPCError(Exception):
    """A protocol-level error with its JSON-RPC code; the message is shown to the client."""

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class ParseError(RPCError):
    """The request body is not valid JSON (or not UTF-8)."""

    code = PARSE_ERROR


class InvalidRequest(RPCError):
    """Valid JSON that is not a JSON-RPC 2.0 request (or a batch over the cap, or too large)."""

    code = INVALID_REQUEST


class MethodNotFound(RPCError):
    code = METHOD_NOT_FOUND


class InvalidParams(RPCError):
    """Params missing, unknown, of the wrong type or out of range."""

    code = INVALID_PARAMS


class BackendError(Exception):
    """Base of the errors a :class:`~node.rpc.backend.NodeBackend` may raise.

    The message is shown to the client, so it must be readable and must not
    leak internals.
    """


class NotFound(BackendError):
    """The requested block, transaction or record does not exist (yet)."""


class BadArgument(BackendError):
    """The request is well-formed but its value is out of range for this node
    (e.g. a height above the latest block); reported as invalid params."""


class TxRejected(BackendError):
    """The transaction could not be accepted at all (not a check failure, which
    is reported in the result's ``code``)."""


class Timeout(BackendError):
    """The node did not finish in time (e.g. the tx was not committed yet)."""


class NodeUnavailable(BackendError):
    """The node cannot serve this now (starting, catching up, shutting down)."""


class Overloaded(BackendError):
    """A resource limit was hit (too many subscriptions, mempool full)."""


class StorageFailed(BackendError):
    """A blob operation failed: no provider, every provider failed, quota full, bad blob."""


#: The single mapping from backend error types to JSON-RPC codes. Checked in
#: order, so subclasses must come before their bases.
_BACKEND_CODES: tuple[tuple[type[BackendError], int], ...] = (
    (NotFound, NOT_FOUND),
    (StorageFailed, STORAGE_FAILED),
    (BadArgument, INVALID_PARAMS),
    (TxRejected, TX_REJECTED),
    (Timeout, TIMEOUT),
    (NodeUnavailable, NODE_UNAVAILABLE),
    (Overloaded, OVERLOADED),
)

#: Short names of the application codes, used in docs and rpc.discover.
APPLICATION_ERRORS: dict[int, str] = {
    NOT_FOUND: "not found",
    TX_REJECTED: "transaction rejected",
    TIMEOUT: "timed out",
    NODE_UNAVAILABLE: "node unavailable",
    OVERLOADED: "overloaded",
    STORAGE_FAILED: "storage failed",
}


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        obj["data"] = data
    return obj


def to_error_object(exc: BaseException) -> dict[str, Any]:
    """The JSON-RPC ``error`` member for ``exc``; the only place codes are chosen.

    Unknown exception types become a generic internal error: the caller logs
    the traceback, the client learns nothing about our internals.
    """
    if isinstance(exc, RPCError):
        return error_object(exc.code, exc.message, exc.data)
    if isinstance(exc, BackendError):
        for cls, code in _BACKEND_CODES:
            if isinstance(exc, cls):
                return error_object(code, str(exc) or APPLICATION_ERRORS.get(code, "error"))
        return error_object(INTERNAL_ERROR, str(exc) or "backend error")
    return error_object(INTERNAL_ERROR, "internal error")
