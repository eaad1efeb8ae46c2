"""The owner service in one process: a host's transport asks the owner's over real libp2p.

The owner's node is a real Chain (ledger, block store, tx index) that a
Producer feeds signed blocks, a real mempool and TxSender; the host is a
second libp2p transport that sends ``/oml/permission/1`` requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from net import RemoteError, Transport
from node.config import OwnerRole
from node.ledger import claim_commitment
from node.ledger.records import HostStatus
from node.ledger.txs import (
    BeginWithdrawalBody,
    CommitClaimBody,
    FundChannelBody,
    OpenClaimBody,
    RegisterRoleBody,
    Role,
)
from node.ledger.vouchers import query_hash, verify_permission
from node.roles.owner.protocol import (
    PROTOCOL,
    PermissionGrant,
    PermissionRequest,
    Refusal,
    decode_grant,
    encode_request,
    parse_stale_message,
)
from node.roles.owner.service import OwnerService
from tests.net.net_helpers import bounded, config, hosts, link

from .owner_kit import HOST, MODEL_ID, OWNER, PRICE, STRANGER, HostClient, OwnerNode, wait_for

pytestmark = pytest.mark.slow


def qh(i: int) -> bytes:
    return query_hash(f"query {i}")


@dataclasses.dataclass
class Setup:
    node: OwnerNode
    owner_net: Transport
    host_net: Transport
    service: OwnerService
    client: HostClient
    nursery: trio.Nursery

    async def ask(self, request: PermissionRequest | bytes) -> PermissionGrant:
        data = request if isinstance(request, bytes) else encode_request(request)
        raw = await self.host_net.request(self.owner_net.peer_id, PROTOCOL, data)
        expected = None if isinstance(request, bytes) else len(request.query_hashes)
        return decode_grant(raw, expected)

    async def refused(self, request: PermissionRequest | bytes, code: Refusal) -> str:
        with pytest.raises(RemoteError) as info:
            await self.ask(request)
        assert info.value.code == code, info.value
        return info.value.message

    def permitted(self) -> int:
        held = self.service.store.held(MODEL_ID, self.node.address(HOST))
        return held.permitted if held else 0


@asynccontextmanager
async def owner_setup(tmp_path: Path, *, escrow: int = 1_000,
                      role: OwnerRole | None = None) -> AsyncIterator[Setup]:
    node = OwnerNode.create(tmp_path)
    try:
        node.setup_model(escrow=escrow)
        async with hosts(config("owner"), config("host")) as (owner_net, host_net):
            await link(host_net, owner_net)
            service = node.service(owner_net, role or OwnerRole(enabled=True))
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                yield Setup(node, owner_net, host_net, service,
                            HostClient(node.keys[HOST], node.chain.chain_id), nursery)
                nursery.cancel_scope.cancel()
    finally:
        node.close()


def check_grant(s: Setup, request: PermissionRequest, grant: PermissionGrant) -> None:
    owner_pub = s.node.keys[OWNER].public_key
    assert grant.issued_height == s.node.chain.height
    for seq, h, sig in zip(request.seqs, request.query_hashes, grant.signatures, strict=True):
        assert verify_permission(owner_pub, s.node.chain.chain_id, MODEL_ID,
                                 request.host, seq, h, sig, issued_height=grant.issued_height)


@bounded(60)
async def test_valid_batches_are_granted_and_the_voucher_is_stored(tmp_path: Path) -> None:
    async with owner_setup(tmp_path) as s:
        for start in (0, 3):
            req = s.client.batch([qh(i) for i in range(start, start + 3)])
            check_grant(s, req, await s.ask(req))
            s.client.accepted(req)
        held = s.service.store.held(MODEL_ID, s.node.address(HOST))
        assert held is not None and held.permitted == 6
        assert (held.voucher.cumulative_count, held.voucher.cumulative_amount) == (6, 6 * PRICE)
        assert s.service.store.issued(MODEL_ID, s.node.address(HOST)) == [
            (0, 3, s.node.chain.height), (3, 3, s.node.chain.height)]
        rpc = s.service.vouchers()
        (row,) = rpc["vouchers"]
        assert row["unredeemed"] == 30 and row["permissions_issued"] == 6
        assert row["escrow"] == 1_000 and row["host_status"] == "active"


@bounded(60)
async def test_refusals_are_typed_and_change_nothing(tmp_path: Path) -> None:
    async with owner_setup(tmp_path, escrow=6 * PRICE) as s:
        first = s.client.batch([qh(0), qh(1)])
        granted = await s.ask(first)
        s.client.accepted(first)
        # a retry of exactly that batch (its answer was lost) gets the same permissions
        assert await s.ask(first) == granted
        # forged: signed by someone else; and a voucher whose amount was not signed
        await s.refused(s.client.batch([qh(2)], key=s.node.keys[STRANGER]), Refusal.BAD_VOUCHER)
        tampered = dataclasses.replace(s.client.batch([qh(2)]), cumulative_amount=999)
        await s.refused(tampered, Refusal.BAD_VOUCHER)
        # underpaying voucher, validly signed
        await s.refused(s.client.batch([qh(2)], amount=s.client.amount), Refusal.BAD_VOUCHER)
        # stale: seq 0..1 again for other queries; a gap: starts at 5
        msg = await s.refused(s.client.batch([qh(8), qh(9)], first_seq=0, amount=2 * PRICE),
                              Refusal.VOUCHER_STALE)
        assert parse_stale_message(msg) == 2
        await s.refused(s.client.batch([qh(5)], first_seq=5), Refusal.VOUCHER_STALE)
        # escrow: 6 x price on chain, 2 used; 5 more would exceed it
        await s.refused(s.client.batch([qh(i) for i in range(2, 7)]), Refusal.ESCROW_EXHAUSTED)
        await s.refused(b"\x93garbage", Refusal.BAD_REQUEST)
        assert s.permitted() == 2
        # the exact remainder still fits
        rest = s.client.batch([qh(i) for i in range(2, 6)])
        await s.ask(rest)
        assert s.permitted() == 6


@bounded(60)
async def test_another_owners_model_is_not_served(tmp_path: Path) -> None:
    async with owner_setup(tmp_path) as s:
        other = dataclasses.replace(s.client, model_id=b"not-registered")
        await s.refused(other.batch([qh(0)]), Refusal.NOT_OWNER)


@bounded(60)
async def test_one_seq_is_never_signed_twice_under_concurrency(tmp_path: Path) -> None:
    async with owner_setup(tmp_path) as s:
        requests = [s.client.batch([qh(100 + i), qh(200 + i)]) for i in range(6)]
        outcomes: list[str] = []

        async def one(req: PermissionRequest) -> None:
            try:
                await s.ask(req)
                outcomes.append("granted")
            except RemoteError as exc:
                assert exc.code == Refusal.VOUCHER_STALE
                outcomes.append("stale")

        async with trio.open_nursery() as nursery:
            for req in requests:
                nursery.start_soon(one, req)
        assert sorted(outcomes) == ["granted"] + ["stale"] * 5
        assert s.permitted() == 2


@bounded(60)
async def test_a_claim_pending_in_the_mempool_blocks_its_query(tmp_path: Path) -> None:
    async with owner_setup(tmp_path) as s:
        # a prover (the stranger's account) committed a claim; its opening, naming the
        # text "query 7", waits in the mempool
        s.node.ok(STRANGER, RegisterRoleBody(role=int(Role.PROVER), bond=1_000))
        items = ((0, "query 7", "x"),) + tuple((i, f"key {i}", "x") for i in range(1, 8))
        prover = s.node.address(STRANGER)
        commitment = claim_commitment(s.node.chain.chain_id, prover, MODEL_ID,
                                      s.node.address(HOST), items, bytes(32))
        s.node.ok(STRANGER, CommitClaimBody(model_id=MODEL_ID, host=s.node.address(HOST),
                                            commitment=commitment, bond=100))
        claim = s.node.signed(STRANGER, OpenClaimBody(claim_id=0, items=items,
                                                      salt=bytes(32)))
        assert s.node.mempool.add(claim).accepted
        await s.refused(s.client.batch([qh(6), qh(7)]), Refusal.CLAIM_PENDING)
        req = s.client.batch([qh(6), qh(8)])
        await s.ask(req)
        s.client.accepted(req)
        assert s.permitted() == 2
        # once the claim has left the mempool (its block is committed) the query is sold
        s.node.commit_mempool()
        assert len(s.node.mempool) == 0
        await s.ask(s.client.batch([qh(7)]))
        assert s.permitted() == 3


@bounded(60)
async def test_requests_over_the_rate_are_refused(tmp_path: Path) -> None:
    role = OwnerRole(enabled=True, rate_per_s=1, rate_burst=2)
    async with owner_setup(tmp_path, role=role) as s:
        for _ in range(2):
            req = s.client.batch([qh(s.client.count)])
            await s.ask(req)
            s.client.accepted(req)
        await s.refused(s.client.batch([qh(9)]), Refusal.RATE_LIMITED)
        assert s.permitted() == 2


@bounded(60)
async def test_threshold_redeem_pays_the_owner(tmp_path: Path) -> None:
    role = OwnerRole(enabled=True, redeem_threshold=4 * PRICE)
    async with owner_setup(tmp_path, role=role) as s:
        host = s.node.address(HOST)
        req = s.client.batch([qh(i) for i in range(3)])
        await s.ask(req)
        s.client.accepted(req)
        assert len(s.node.mempool) == 0  # 15 < threshold 20
        req = s.client.batch([qh(i) for i in range(3, 5)])
        await s.ask(req)
        await wait_for(lambda: len(s.node.mempool) == 1, what="redeem in the mempool")
        balance = s.node.ledger.account(s.node.address(OWNER)).balance
        (result,) = s.node.commit_mempool()
        assert result.code == 0, result.log
        rec = s.node.ledger.host(MODEL_ID, host)
        assert (rec.redeemed_count, rec.redeemed_amount, rec.escrow) == (5, 25, 975)
        assert s.node.ledger.account(s.node.address(OWNER)).balance == balance + 25
        await wait_for(lambda: s.service.vouchers()["vouchers"][0]["last_redeem"] is not None,
                       what="the redeem recorded")
        row = s.service.vouchers()["vouchers"][0]
        assert row["unredeemed"] == 0 and row["pending_redeem"] is None
        assert row["last_redeem"]["ok"] and row["last_redeem"]["cumulative_amount"] == 25


@bounded(60)
async def test_begin_withdrawal_is_settled_at_once_and_nothing_more_is_signed(
        tmp_path: Path) -> None:
    async with owner_setup(tmp_path) as s:
        host = s.node.address(HOST)
        req = s.client.batch([qh(i) for i in range(7)])
        await s.ask(req)
        s.client.accepted(req)
        s.node.ok(HOST, BeginWithdrawalBody(model_id=MODEL_ID))
        await wait_for(lambda: len(s.node.mempool) == 1, what="redeem after begin_withdrawal")
        await s.refused(s.client.batch([qh(7)]), Refusal.HOST_NOT_ACTIVE)
        (result,) = s.node.commit_mempool()
        assert result.code == 0, result.log
        rec = s.node.ledger.host(MODEL_ID, host)
        assert rec.status == HostStatus.UNBONDING
        assert (rec.redeemed_count, rec.redeemed_amount) == (7, 7 * PRICE)
        assert s.permitted() == 7


@bounded(60)
async def test_restart_keeps_the_voucher_and_resubmits_the_stored_redeem(tmp_path: Path
                                                                         ) -> None:
    node = OwnerNode.create(tmp_path)
    try:
        node.setup_model()
        client = HostClient(node.keys[HOST], node.chain.chain_id)
        role = OwnerRole(enabled=True, shutdown_redeem_ms=200)
        async with hosts(config("owner"), config("host")) as (owner_net, host_net):
            await link(host_net, owner_net)
            service = node.service(owner_net, role)
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                req = client.batch([qh(i) for i in range(4)])
                await host_net.request(owner_net.peer_id, PROTOCOL, encode_request(req))
                client.accepted(req)
                nursery.cancel_scope.cancel()
            # the shutdown signed and stored a redeem and handed it to the mempool
            assert len(node.mempool) == 1
            node.mempool.remove(list(_hashes(node.mempool)))  # the node lost its mempool

            service = node.service(owner_net, role)
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                assert service.store.held(MODEL_ID, node.address(HOST)).permitted == 4
                await wait_for(lambda: len(node.mempool) == 1, what="redeem re-submitted")
                (result,) = node.commit_mempool()
                assert result.code == 0, result.log
                await wait_for(lambda: service.store.pending(MODEL_ID, node.address(HOST))
                               is None, what="pending redeem cleared")
                # the host continues where it was: seq 4
                stale = client.batch([qh(0)], first_seq=0, amount=PRICE)
                with pytest.raises(RemoteError) as info:
                    await host_net.request(owner_net.peer_id, PROTOCOL, encode_request(stale))
                assert parse_stale_message(info.value.message) == 4
                nursery.cancel_scope.cancel()
        rec = node.ledger.host(MODEL_ID, node.address(HOST))
        assert (rec.redeemed_count, rec.redeemed_amount) == (4, 4 * PRICE)
    finally:
        node.close()


def _hashes(mempool: object) -> list[bytes]:
    from node.ledger.txs import tx_hash

    return [tx_hash(raw) for raw in mempool]  # type: ignore[attr-defined]


@bounded(60)
async def test_escrow_topped_up_serves_again(tmp_path: Path) -> None:
    async with owner_setup(tmp_path, escrow=2 * PRICE) as s:
        req = s.client.batch([qh(0), qh(1)])
        await s.ask(req)
        s.client.accepted(req)
        await s.refused(s.client.batch([qh(2)]), Refusal.ESCROW_EXHAUSTED)
        s.node.ok(HOST, FundChannelBody(model_id=MODEL_ID, amount=PRICE))
        await s.ask(s.client.batch([qh(2)]))
        assert s.permitted() == 3


@bounded(60)
async def test_a_stopped_service_answers_not_owner(tmp_path: Path) -> None:
    from net import HandlerError

    async with owner_setup(tmp_path) as s:
        req = s.client.batch([qh(0)])
        await s.ask(req)
        s.client.accepted(req)
        service = s.service
        s.nursery.cancel_scope.cancel()
    with pytest.raises(HandlerError) as info:
        await service.handle("late-peer", encode_request(s.client.batch([qh(1)])))
    assert info.value.code == Refusal.NOT_OWNER
