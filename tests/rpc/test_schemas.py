"""Every real response validates against the result schema that rpc.discover publishes.

A small validator for the JSON Schema subset our schemas use (type, properties,
required, additionalProperties, items, oneOf, pattern, minimum/maximum), so
that the published description is checked against the code, not trusted.
"""

from __future__ import annotations

import re
from typing import Any

from .conftest import Harness
from .fake_backend import PEER, VAL_ADDR, txhash

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[t])


def check(value: Any, schema: dict[str, Any], path: str = "$") -> None:
    if "oneOf" in schema:
        passed = 0
        for sub in schema["oneOf"]:
            try:
                check(value, sub, path)
                passed += 1
            except AssertionError:
                pass
        assert passed == 1, f"{path}: {value!r} matches {passed} of oneOf"
        return
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        assert any(_type_ok(value, x) for x in types), f"{path}: {value!r} is not {t}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            assert not extra, f"{path}: unexpected {extra}"
        for key, sub in props.items():
            if key in value:
                check(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{path}: {value!r} !~ {schema['pattern']}"
    if isinstance(value, int) and "minimum" in schema:
        assert value >= schema["minimum"], f"{path}: {value} < minimum"


def test_validator_catches_mismatch() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}},
              "required": ["a"], "additionalProperties": False}
    check({"a": 1}, schema)
    for bad in ({}, {"a": -1}, {"a": "1"}, {"a": 1, "b": 2}, {"a": True}):
        try:
            check(bad, schema)
        except AssertionError:
            continue
        raise AssertionError(f"validator accepted {bad}")


async def test_results_match_discover_schemas(rpc: Harness) -> None:
    rpc.backend.pending.append(b"ok-a")
    rpc.backend.commit()
    rpc.backend.commit()
    rpc.backend.auto_commit = True
    doc = await rpc.result("rpc.discover")
    schemas = {m["name"]: m["result"]["schema"] for m in doc["methods"]}
    calls = {
        "health": None, "status": None, "net_info": None, "block": {"height": 1},
        "blockchain": None, "tx": {"hash": txhash(b"ok-a").hex()}, "validators": None,
        "broadcast_tx_sync": {"tx": b"bad".hex()},
        "broadcast_tx_commit": {"tx": b"ok-b".hex()},
        "account": {"address": VAL_ADDR.hex()}, "model": {"model_id": "aa"},
        "host": {"model_id": "aa", "host": "11" * 20}, "claim": {"claim_id": 3},
        "params": None, "roles": None, "supply": None, "rpc.discover": None,
        "num_unconfirmed_txs": None, "genesis": None,
        "unconfirmed_txs": {"limit": 5},
        "dial_peers": {"peers": [f"/ip4/127.0.0.1/tcp/5/p2p/{PEER}"], "persistent": True},
    }
    ws_only = {m["name"] for m in doc["methods"] if m.get("x-websocket-only")}
    assert set(calls) | ws_only == set(schemas)
    for method, params in calls.items():
        result = await rpc.result(method, params)
        check(result, schemas[method], method)
    # both shapes of broadcast_tx_commit
    check(await rpc.result("broadcast_tx_commit", {"tx": b"bad".hex()}),
          schemas["broadcast_tx_commit"])
    # param schemas accept what the server accepts
    block_param = next(m for m in doc["methods"] if m["name"] == "block")["params"][0]["schema"]
    check(5, block_param)
    check("5", block_param)


async def test_roles_lists_registrations_by_role(rpc: Harness) -> None:
    both = await rpc.result("roles")
    assert [r["address"] for r in both["omlizers"]] == ["22" * 20]
    assert both["provers"][0]["bond"] == 700 and both["provers"][0]["role"] == "prover"
    provers = await rpc.result("roles", {"role": "prover"})
    assert provers["omlizers"] == [] and len(provers["provers"]) == 1
    err = (await rpc.call("roles", {"role": "validator"}))["error"]
    assert err["code"] == -32602 and "omlizer" in err["message"]
