"""Typed views -> CometBFT-shaped JSON, each next to the JSON Schema it produces.

Conventions (also in docs/rpc.md): bytes are lowercase hex without ``0x``,
except model ids, which are text (see :func:`with_text_ids`);
heights, amounts, powers and indices are JSON integers (not CometBFT's
strings: every value here fits in 64 bits and our clients are not limited
to 53-bit floats; where that matters, parse with an int-preserving decoder);
times are given twice, as RFC 3339 UTC text (CometBFT's shape) and as integer
milliseconds since the epoch (``*_time_ms``), both from the block header,
never from this node's clock.

Keeping each schema beside its renderer is what keeps ``rpc.discover``
honest; tests validate real responses against these schemas.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from .backend import (
    JSON,
    BlockView,
    CheckResult,
    JSONRecord,
    MempoolView,
    NetInfo,
    NodeStatus,
    TxResult,
    TxView,
    ValidatorInfo,
    ValidatorSetView,
)

# --- schema building blocks --------------------------------------------------

HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "bytes as lowercase hex"}
UINT = {"type": "integer", "minimum": 0}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "description": "RFC 3339 UTC time from the block header"}
ANY_OBJECT = {"type": "object"}


def obj(props: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    """An object schema where every listed property is required."""
    return {"type": "object", "properties": props, "required": sorted(props),
            "additionalProperties": extra}


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def rfc3339(ms: int) -> str:
    """Milliseconds since the epoch as RFC 3339 UTC text (``2026-01-02T03:04:05.678Z``)."""
    dt = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.UTC)  # exact: no float
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --- status ------------------------------------------------------------------

VALIDATOR_SCHEMA = obj({"address": HEX, "pub_key": HEX, "voting_power": UINT,
                        "proposer_priority": INT})


def render_validator(v: ValidatorInfo) -> JSON:
    return {"address": v.address.hex(), "pub_key": v.pub_key.hex(),
            "voting_power": v.voting_power, "proposer_priority": v.proposer_priority}


STATUS_SCHEMA = obj({
    "node_info": obj({"id": STR, "moniker": STR, "network": STR, "listen_addr": STR,
                      "version": STR}),
    "sync_info": obj({"latest_block_hash": HEX, "latest_app_hash": HEX,
                      "latest_block_height": UINT, "latest_block_time": TIME,
                      "latest_block_time_ms": UINT, "earliest_block_height": UINT,
                      "catching_up": BOOL}),
    "validator_info": VALIDATOR_SCHEMA,
})


def render_status(s: NodeStatus) -> JSON:
    ni, si = s.node_info, s.sync_info
    return {
        "node_info": {"id": ni.id, "moniker": ni.moniker, "network": ni.network,
                      "listen_addr": ni.listen_addr, "version": ni.version},
        "sync_info": {"latest_block_hash": si.latest_block_hash.hex(),
                      "latest_app_hash": si.latest_app_hash.hex(),
                      "latest_block_height": si.latest_block_height,
                      "latest_block_time": rfc3339(si.latest_block_time_ms),
                      "latest_block_time_ms": si.latest_block_time_ms,
                      "earliest_block_height": si.earliest_block_height,
                      "catching_up": si.catching_up},
        "validator_info": render_validator(s.validator_info),
    }


NET_INFO_SCHEMA = obj({
    "listening": BOOL, "listeners": array(STR), "n_peers": UINT,
    "peers": array(obj({"node_id": STR, "remote_addr": STR, "is_outbound": BOOL})),
})


def render_net_info(n: NetInfo) -> JSON:
    return {"listening": n.listening, "listeners": list(n.listeners), "n_peers": len(n.peers),
            "peers": [{"node_id": p.node_id, "remote_addr": p.remote_addr,
                       "is_outbound": p.is_outbound} for p in n.peers]}


# --- blocks ------------------------------------------------------------------

BLOCK_ID_SCHEMA = obj({"hash": HEX})
HEADER_SCHEMA = {"type": "object", "description": "block header fields (bytes as hex), "
                 "as built by the consensus package"}
BLOCK_SCHEMA = obj({
    "block_id": BLOCK_ID_SCHEMA,
    "block": obj({"header": HEADER_SCHEMA, "height": UINT, "time": TIME, "time_ms": UINT,
                  "data": obj({"txs": array(HEX)}),
                  "last_commit": {"type": ["object", "null"]}}),
})


def render_block(b: BlockView) -> JSON:
    return {"block_id": {"hash": b.hash.hex()},
            "block": {"header": dict(b.header), "height": b.height, "time": rfc3339(b.time_ms),
                      "time_ms": b.time_ms, "data": {"txs": [t.hex() for t in b.txs]},
                      "last_commit": dict(b.last_commit) if b.last_commit is not None else None}}


BLOCK_META_SCHEMA = obj({"block_id": BLOCK_ID_SCHEMA, "block_size": UINT, "height": UINT,
                         "time": TIME, "num_txs": UINT, "header": HEADER_SCHEMA})


def render_block_meta(b: BlockView) -> JSON:
    return {"block_id": {"hash": b.hash.hex()}, "block_size": b.size_bytes, "height": b.height,
            "time": rfc3339(b.time_ms), "num_txs": len(b.txs), "header": dict(b.header)}


BLOCKCHAIN_SCHEMA = obj({"last_height": UINT, "block_metas": array(BLOCK_META_SCHEMA)})


# --- transactions --------------------------------------------------------------

TX_RESULT_SCHEMA = obj({"code": UINT, "log": STR, "codespace": STR,
                        "events": array(ANY_OBJECT)})


def render_tx_result(r: TxResult) -> JSON:
    return {"code": r.code, "log": r.log, "codespace": r.codespace,
            "events": [render_event(e) for e in r.events]}


def render_event(e: Any) -> JSON:
    """``{"type", "attributes"}`` with model ids among the attributes as text."""
    out = dict(e)
    attrs = out.get("attributes")
    if isinstance(attrs, dict):
        out["attributes"] = with_text_ids(attrs)
    return out


TX_SCHEMA = obj({"hash": HEX, "height": UINT, "index": UINT, "tx_result": TX_RESULT_SCHEMA,
                 "tx": HEX})


def render_tx(t: TxView) -> JSON:
    return {"hash": t.hash.hex(), "height": t.height, "index": t.index,
            "tx_result": render_tx_result(t.result), "tx": t.tx.hex()}


CHECK_SCHEMA = obj({"code": UINT, "log": STR, "codespace": STR, "hash": HEX})


def render_check(c: CheckResult) -> JSON:
    return {"code": c.code, "log": c.log, "codespace": c.codespace, "hash": c.hash.hex()}


BROADCAST_COMMIT_SCHEMA = obj({"check_tx": CHECK_SCHEMA,
                               "tx_result": {"oneOf": [TX_RESULT_SCHEMA, {"type": "null"}]},
                               "hash": HEX, "height": UINT})

VALIDATORS_SCHEMA = obj({"block_height": UINT, "validators": array(VALIDATOR_SCHEMA),
                         "count": UINT, "total": UINT})


def render_validators(v: ValidatorSetView) -> JSON:
    return {"block_height": v.block_height,
            "validators": [render_validator(x) for x in v.validators],
            "count": len(v.validators), "total": len(v.validators)}


NUM_UNCONFIRMED_SCHEMA = obj({"n_txs": UINT, "total": UINT, "total_bytes": UINT})
UNCONFIRMED_SCHEMA = obj({"n_txs": UINT, "total": UINT, "total_bytes": UINT, "txs": array(HEX)})


def render_unconfirmed(m: MempoolView, *, with_txs: bool) -> JSON:
    """CometBFT's shape: ``n_txs`` is how many are listed, ``total`` how many are pending."""
    out = {"n_txs": len(m.txs) if with_txs else m.total, "total": m.total,
           "total_bytes": m.total_bytes}
    if with_txs:
        out["txs"] = [t.hex() for t in m.txs]
    return out


def render_record(r: JSONRecord) -> JSON:
    """A ledger record via its own ``to_json()`` (or a plain mapping), model ids as text."""
    out = r if isinstance(r, dict) else r.to_json()
    return with_text_ids(out) if isinstance(out, dict) else out


# --- model ids -------------------------------------------------------------------

MODEL_ID_KEYS = ("model_id", "parent")
"""Keys whose value is a model id (``parent``: the model a model derives from)."""


def model_id_text(raw: bytes) -> str | None:
    """The model id as text: its bytes decoded as UTF-8, or None where they are not UTF-8.

    Model ids are text everywhere else (the CLI, the OML package, vouchers),
    and the ledger stores their UTF-8 bytes; only ids that are not valid
    UTF-8 (possible on the ledger, never made by our tools) have no text.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def with_text_ids(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` where each model id (hex from the ledger) is shown as text.

    The rule, for every key ``k`` in :data:`MODEL_ID_KEYS`: ``k`` becomes the
    id's UTF-8 text, or ``null`` when the bytes are not UTF-8, and ``k_hex``
    always holds the bytes as hex. A client that wants the exact bytes reads
    ``k_hex``; one that shows ids reads ``k`` and falls back to ``k_hex``.
    A value that is not hex (a backend that already sends text) is left alone.
    """
    out: dict[str, Any] = {}
    for key, value in fields.items():
        raw = _hex_bytes(value) if key in MODEL_ID_KEYS else None
        if raw is None:
            out[key] = value
        else:
            out[key] = model_id_text(raw)
            out[f"{key}_hex"] = value
    return out


def describe_model_id(raw: bytes) -> str:
    """A model id for messages: its text in double quotes, or ``0x`` + hex if not UTF-8."""
    text = model_id_text(raw)
    return json.dumps(text, ensure_ascii=False) if text is not None else f"0x{raw.hex()}"


_HEX = re.compile(r"(?:[0-9a-f]{2})*")


def _hex_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        return None
    return bytes.fromhex(value)


# --- events ------------------------------------------------------------------------

def new_block_value(b: BlockView) -> JSON:
    return {"block": render_block(b)["block"], "block_id": {"hash": b.hash.hex()}}


def new_block_header_value(b: BlockView) -> JSON:
    return {"header": dict(b.header), "height": b.height, "block_id": {"hash": b.hash.hex()}}


def tx_value(t: TxView) -> JSON:
    return {"TxResult": {"height": t.height, "index": t.index, "tx": t.tx.hex(),
                         "hash": t.hash.hex(), "result": render_tx_result(t.result)}}
