"""RPC ``dial_peers``: parameters checked, bad addresses change nothing, loopback only."""

from __future__ import annotations

import pytest

from node.rpc import EventBus, build_methods
from node.rpc.errors import MethodNotFound
from node.rpc.methods import Context

from .conftest import TEST_CONFIG, Harness
from .fake_backend import PEER, FakeBackend

ADDR = f"/ip4/127.0.0.1/tcp/5/p2p/{PEER}"


async def test_dial_peers_passes_addresses_and_reports_each_peer(rpc: Harness) -> None:
    res = await rpc.result("dial_peers", {"peers": [ADDR], "persistent": True})
    assert res == {"persistent": True, "peers": [{"id": PEER, "connected": True}]}
    assert rpc.backend.dialed == [([ADDR], True)]
    # persistent defaults to false (dial once, as CometBFT's dial_peers without persistent)
    assert (await rpc.result("dial_peers", [[ADDR]]))["persistent"] is False
    assert rpc.backend.dialed[-1] == ([ADDR], False)


@pytest.mark.parametrize("params", [
    {"peers": []},                                  # nothing to dial
    {"peers": ADDR},                                # a string, not a list
    {"peers": [ADDR, 7]},                           # not all strings
    {"peers": [ADDR] * 65},                         # over the cap
    {"peers": [ADDR], "persistent": "yes"},         # a typo must not mean true
    {"peers": [ADDR], "persistent": 1},
    {"persistent": True},                           # peers missing
    {"peers": [ADDR], "sticky": True},              # unknown param
    {"peers": ["/ip4/127.0.0.1/tcp/5"]},            # no /p2p/ID: the backend refuses
    {"peers": [ADDR, "/dns4/x/udp/1/p2p/" + PEER]},  # one bad address in the list
])
async def test_bad_params_are_invalid_and_dial_nothing(rpc: Harness, params: dict) -> None:
    out = await rpc.call("dial_peers", params)
    assert out["error"]["code"] == -32602, out
    assert rpc.backend.dialed == []


async def test_dial_peers_is_refused_on_a_non_loopback_listener() -> None:
    """Like CometBFT's unsafe routes: a public RPC must not make the node dial for anyone."""
    method = build_methods()["dial_peers"]
    for laddr in ("0.0.0.0:26657", "10.1.2.3:0", "[::]:26657"):
        backend = FakeBackend(EventBus())
        ctx = Context(backend=backend, events=EventBus(),
                      config=TEST_CONFIG.__class__(laddr=laddr))
        with pytest.raises(MethodNotFound, match="loopback"):
            await method.handler(ctx, peers=[ADDR], persistent=True)
        assert backend.dialed == []
    for laddr in ("127.0.0.1:0", "localhost:26657", "[::1]:26657"):
        backend = FakeBackend(EventBus())
        ctx = Context(backend=backend, events=EventBus(),
                      config=TEST_CONFIG.__class__(laddr=laddr))
        assert (await method.handler(ctx, peers=[ADDR]))["peers"][0]["id"] == PEER
