"""Property test: whatever JSON arrives, the dispatcher answers with well-formed JSON-RPC.

Runs the dispatcher directly (no HTTP) so many examples stay cheap. For any
decoded JSON value, or any raw bytes, the result is None (notifications only)
or a response / list of responses that each have ``jsonrpc``, ``id`` and
exactly one of ``result``/``error`` with an integer code; nothing raises.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.config import RPCSection
from node.rpc import Dispatcher, EventBus, build_methods
from node.rpc.methods import Context

from .fake_backend import FakeBackend

METHOD_NAMES = sorted(build_methods()) + ["nope", "", "rpc.", "subscribe"]

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=20), st.sampled_from(["aa", "0x" + "11" * 20, "5",
                                                               "11" * 32, "tm.event='NewBlock'"]))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
param_names = st.sampled_from(["height", "hash", "address", "model_id", "host", "claim_id", "tx",
                               "minHeight", "maxHeight", "query", "x"])
request = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]),
     "method": st.one_of(st.sampled_from(METHOD_NAMES), json_scalar)},
    optional={"id": st.one_of(st.integers(0, 10), st.text(max_size=5), st.none(), json_value),
              "params": st.one_of(st.dictionaries(param_names, json_value, max_size=3),
                                  st.lists(json_value, max_size=3), json_value)})
message = st.one_of(request, st.lists(request, max_size=8), json_value)


def make_dispatcher() -> Dispatcher:
    events = EventBus()
    backend = FakeBackend(events)
    backend.commit()
    config = RPCSection(max_batch=6, timeout_broadcast_tx_commit_ms=1)
    methods = build_methods()
    return Dispatcher(methods, Context(backend=backend, events=events, config=config,
                                       methods=methods), max_batch=6)


def check_response(r: Any) -> None:
    assert isinstance(r, dict) and r["jsonrpc"] == "2.0" and "id" in r
    assert ("result" in r) != ("error" in r)
    if "error" in r:
        assert isinstance(r["error"]["code"], int) and isinstance(r["error"]["message"], str)
        assert r["error"]["code"] != -32603, r  # the fake backend never fails: a bug of ours
    json.dumps(r)  # serialisable


def check(out: Any) -> None:
    if out is None:
        return
    if isinstance(out, list):
        assert out
        for r in out:
            check_response(r)
    else:
        check_response(out)


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(message)
def test_any_message_gets_a_wellformed_answer(msg: Any) -> None:
    dispatcher = make_dispatcher()

    async def main() -> None:
        with trio.fail_after(5):
            check(await dispatcher.handle_value(msg))

    trio.run(main)


@SETTINGS
@given(st.binary(max_size=64))
def test_any_bytes_get_a_wellformed_answer(body: bytes) -> None:
    dispatcher = make_dispatcher()

    async def main() -> None:
        with trio.fail_after(5):
            check(await dispatcher.handle_body(body))

    trio.run(main)
