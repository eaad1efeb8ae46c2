"""The owner permission service on a real node process (issue 10, the owner's half).

One validator process runs ``[roles.owner]`` (its account owns the model);
the test process plays the host (a libp2p transport dialling the node, its
own key funded at genesis), the OMLizer and a stranger, and checks the
chain through JSON-RPC only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from consensus.crypto import PrivateKey
from net import NetConfig, RemoteError, Transport, open_transport
from node.config import load_config, render_config, with_changes
from node.home import Home
from node.ledger import build_tx
from node.ledger.txs import (
    BeginWithdrawalBody,
    CommitOmlizationBody,
    FundChannelBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
)
from node.ledger.vouchers import query_hash, sign_voucher, verify_permission
from node.roles.owner.protocol import (
    PROTOCOL,
    PermissionGrant,
    PermissionRequest,
    Refusal,
    decode_grant,
    encode_request,
    parse_stale_message,
)
from node.rpc_client import wait_until
from node.testnet import AUTO_PORTS, Testnet, init_testnet

from ._settings import FAST_CONSENSUS

pytestmark = pytest.mark.slow

MODEL = b"e2e-owned-model"
PRICE = 3
HOST_KEY = PrivateKey(b"\x41" * 32)
OMLIZER_KEY = PrivateKey(b"\x42" * 32)
STRANGER_KEY = PrivateKey(b"\x43" * 32)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    out = tmp_path_factory.mktemp("owner") / "testnet"
    init_testnet(out, validators=1, base_port=AUTO_PORTS, chain_id="oml-e2e-owner",
                 consensus=FAST_CONSENSUS,
                 fund=tuple(k.address.hex() for k in (HOST_KEY, OMLIZER_KEY, STRANGER_KEY)))
    home = Home(out / "node0")
    config = with_changes(home.config(), roles={"owner": {
        "enabled": True, "redeem_threshold": 10**12, "shutdown_redeem_ms": 3000}})
    home.config_file.write_text(render_config(config), "utf-8")
    assert load_config(home.config_file).roles.owner.enabled
    testnet = Testnet(out)
    try:
        testnet.start_all(["node0"], timeout=90)
        yield testnet
    finally:
        testnet.stop_all()


def call(net: Testnet, method: str, **params: Any) -> Any:
    with net.client("node0") as c:
        return c.call(method, params)


def send(net: Testnet, key: PrivateKey, body: Any) -> dict[str, Any]:
    nonce = call(net, "account", address=key.address.hex())["nonce"]
    tx = build_tx(key, "oml-e2e-owner", nonce, body)
    res = call(net, "broadcast_tx_commit", tx=tx.hex())
    assert res["check_tx"]["code"] == 0, res
    assert res["tx_result"]["code"] == 0, res
    return res


def host_record(net: Testnet) -> dict[str, Any]:
    return call(net, "host", model_id=MODEL.hex(), host=HOST_KEY.address.hex())


@dataclasses.dataclass
class Host:
    """The host's side: a transport connected to the owner node and a voucher counter."""

    transport: Transport
    owner_peer: str
    count: int = 0
    amount: int = 0

    def batch(self, n: int, *, first_seq: int | None = None, amount: int | None = None,
              key: PrivateKey = HOST_KEY) -> PermissionRequest:
        first = self.count if first_seq is None else first_seq
        cumulative = self.amount + PRICE * n if amount is None else amount
        return PermissionRequest(
            model_id=MODEL, host=HOST_KEY.address, first_seq=first,
            query_hashes=tuple(query_hash(f"prompt {first + i}") for i in range(n)),
            cumulative_count=first + n, cumulative_amount=cumulative,
            voucher_signature=sign_voucher(key, "oml-e2e-owner", MODEL, first + n, cumulative))

    async def ask(self, req: PermissionRequest | bytes) -> PermissionGrant:
        data = req if isinstance(req, bytes) else encode_request(req)
        raw = await self.transport.request(self.owner_peer, PROTOCOL, data, timeout=10)
        return decode_grant(raw, None if isinstance(req, bytes) else len(req.query_hashes))

    async def grant(self, n: int) -> tuple[PermissionRequest, PermissionGrant]:
        req = self.batch(n)
        grant = await self.ask(req)
        self.count, self.amount = req.cumulative_count, req.cumulative_amount
        return req, grant

    async def refused(self, req: PermissionRequest | bytes, code: Refusal) -> str:
        with pytest.raises(RemoteError) as info:
            await self.ask(req)
        assert info.value.code == code, info.value
        return info.value.message


async def rpc(fn: Any, *args: Any, **kw: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


async def connect(net: Testnet, transport: Transport) -> str:
    with trio.fail_after(20):
        return await transport.connect(net.spec("node0").p2p_addr)


def verify_all(owner_pub: bytes, height: int, req: PermissionRequest,
               grant: PermissionGrant) -> None:
    assert 0 < grant.issued_height <= height
    for seq, h, sig in zip(req.seqs, req.query_hashes, grant.signatures, strict=True):
        assert verify_permission(owner_pub, "oml-e2e-owner", MODEL, HOST_KEY.address, seq, h,
                                 sig, issued_height=grant.issued_height)


def setup_chain(net: Testnet, owner: PrivateKey, escrow: int) -> None:
    send(net, owner, RegisterModelBody(model_id=MODEL, weights_hash=b"\x11" * 32,
                                       price_per_query=PRICE, omlizers=(OMLIZER_KEY.address,)))
    send(net, OMLIZER_KEY, RegisterRoleBody(role=int(Role.OMLIZER), bond=10_000))
    send(net, HOST_KEY, RequestAccessBody(model_id=MODEL, collateral=1_000))
    send(net, OMLIZER_KEY, CommitOmlizationBody(
        model_id=MODEL, host=HOST_KEY.address, package_hash=b"\x22" * 32,
        fp_root=b"\x33" * 32, fp_count=4, package_blob=b"\x44" * 32))
    send(net, HOST_KEY, FundChannelBody(model_id=MODEL, amount=escrow))


@pytest.mark.timeout(300)
async def test_owner_grants_refuses_survives_a_restart_and_is_paid(net: Testnet) -> None:
    owner = Home(net.spec("node0").home).account_key().key
    await rpc(setup_chain, net, owner, 40 * PRICE)
    cfg = NetConfig(seed=b"\x51" * 32, stream_timeout_s=10.0)
    async with open_transport(cfg) as transport:
        host = Host(transport, await connect(net, transport))

        # refusals: typed, nothing signed
        await host.refused(b"\x00not a request", Refusal.BAD_REQUEST)
        await host.refused(host.batch(3, key=STRANGER_KEY), Refusal.BAD_VOUCHER)
        await host.refused(host.batch(3, first_seq=7), Refusal.VOUCHER_STALE)
        await host.refused(host.batch(41), Refusal.ESCROW_EXHAUSTED)
        state = await rpc(call, net, "owner_vouchers")
        assert state["vouchers"] == [] and state["owner"] == owner.address.hex()

        # valid batches: permissions the ledger's verify_permission accepts
        for _ in range(3):
            req, grant = await host.grant(10)
            height = (await rpc(call, net, "status"))["sync_info"]["latest_block_height"]
            verify_all(owner.public_key, height, req, grant)
        (row,) = (await rpc(call, net, "owner_vouchers"))["vouchers"]
        assert (row["cumulative_count"], row["cumulative_amount"]) == (30, 30 * PRICE)
        assert row["permissions_issued"] == 30 and row["unredeemed"] == 30 * PRICE

    # restart: the voucher survives; the shutdown's redeem is stored and lands
    await rpc(net.stop, "node0")
    await rpc(net.start, "node0")
    await rpc(net.wait_healthy, ["node0"], timeout=90)
    (row,) = (await rpc(call, net, "owner_vouchers"))["vouchers"]
    assert (row["cumulative_count"], row["permissions_issued"]) == (30, 30)
    await rpc(wait_until, lambda: host_record(net)["redeemed_amount"] == 30 * PRICE,
              timeout=60, what="the shutdown redeem committed after the restart")

    cfg = NetConfig(seed=b"\x52" * 32, stream_timeout_s=10.0)
    async with open_transport(cfg) as transport:
        host = Host(transport, await connect(net, transport), count=0)
        msg = await host.refused(host.batch(2), Refusal.VOUCHER_STALE)
        assert parse_stale_message(msg) == 30
        host.count, host.amount = 30, 30 * PRICE
        await host.grant(10)  # exactly the escrow left: 30 x 3 redeemed of 120
        await host.refused(host.batch(1), Refusal.ESCROW_EXHAUSTED)

        # begin_withdrawal: the owner redeems at once and signs nothing more
        res = await rpc(send, net, HOST_KEY, BeginWithdrawalBody(model_id=MODEL))
        began = res["height"]
        params = await rpc(call, net, "params")
        await rpc(wait_until, lambda: host_record(net)["redeemed_amount"] == 40 * PRICE,
                  timeout=60, what="the redeem after begin_withdrawal")
        await host.refused(host.batch(1), Refusal.HOST_NOT_ACTIVE)

    (row,) = (await rpc(call, net, "owner_vouchers"))["vouchers"]
    last = row["last_redeem"]
    assert last["ok"] and last["cumulative_count"] == 40
    assert last["height"] < began + params["unbonding_delay"]
    rec = await rpc(host_record, net)
    assert rec["status"] == "unbonding"
    # paid for every permission it signed
    assert rec["redeemed_count"] == row["permissions_issued"] == 40
    assert rec["redeemed_amount"] == 40 * PRICE and rec["escrow"] == 0
    tx = await rpc(call, net, "tx", hash=last["tx"])
    (event,) = [e for e in tx["tx_result"]["events"] if e["type"] == "redeem"]
    attrs = event["attributes"]
    assert int(attrs["paid"]) == 10 * PRICE and int(attrs["unpaid"]) == 0
