"""``rpc.discover``: the OpenRPC 1.2 document, generated from the method table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import APPLICATION_ERRORS, INTERNAL_ERROR, INVALID_PARAMS

OPENRPC_VERSION = "1.2.6"
API_VERSION = "1.0.0"


def _method_doc(m: Any) -> dict[str, Any]:
    errors = [{"code": INVALID_PARAMS, "message": "invalid params"},
              {"code": INTERNAL_ERROR, "message": "internal error"}]
    errors += [{"code": c, "message": APPLICATION_ERRORS[c]} for c in m.errors]
    doc: dict[str, Any] = {
        "name": m.name,
        "summary": m.summary,
        "paramStructure": "either",
        "params": [{"name": p.name, "description": p.description, "required": p.required,
                    "schema": p.type.schema()} for p in m.params],
        "result": {"name": f"{m.name}_result", "schema": m.result},
        "errors": errors,
    }
    if m.websocket_only:
        doc["x-websocket-only"] = True
    return doc


def openrpc_document(methods: Mapping[str, Any], *, servers: list[str] | None = None
                     ) -> dict[str, Any]:
    """The OpenRPC document describing every method in ``methods``, sorted by name."""
    doc: dict[str, Any] = {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": "oml-node JSON-RPC", "version": API_VERSION,
                 "description": "JSON-RPC 2.0 over HTTP POST / (batches allowed) and over "
                                "the websocket at /websocket. Bytes are hex; heights and "
                                "amounts are JSON integers (decimal strings accepted as input)."},
        "methods": [_method_doc(methods[name]) for name in sorted(methods)],
    }
    if servers:
        doc["servers"] = [{"name": f"node{i}", "url": url} for i, url in enumerate(servers)]
    return doc
