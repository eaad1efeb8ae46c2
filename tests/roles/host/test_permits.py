"""The permitter: batching, seqs without gaps, re-sync, refusals, durable permission strings."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio
import trio.testing

from node.ledger.vouchers import verify_permission, verify_voucher
from node.roles.host.permits import PermissionRefused
from node.roles.host.store import HostStore
from node.roles.owner.protocol import PermissionGrant, Refusal

from .gwkit import CHAIN_ID, HOST, MODEL_ID, OWNER, PRICE, FakeOwner, make_permitter


def qh(i: int) -> bytes:
    return hashlib.sha256(b"query %d" % i).digest()


@pytest.fixture
def store(tmp_path: Path):
    s = HostStore.open(tmp_path / "host")
    yield s
    s.close()


async def permit_all(permitter, hashes, results: dict) -> None:
    async def one(i: int, h: bytes) -> None:
        try:
            results[i] = await permitter.permit(h)
        except PermissionRefused as exc:
            results[i] = exc

    async with trio.open_nursery() as nursery:
        for i, h in enumerate(hashes):
            nursery.start_soon(one, i, h)


async def run_permitter(permitter, hashes) -> dict:
    results: dict = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(permitter.run)
        await permit_all(permitter, hashes, results)
        nursery.cancel_scope.cancel()
    return results


async def test_concurrent_queries_share_one_batch_and_are_stored_before_use(store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner, window_s=0.05)
    results = await run_permitter(permitter, [qh(i) for i in range(10)])
    assert len(owner.requests) == 1  # one permission request for ten queries
    req = owner.requests[0]
    assert (req.first_seq, req.cumulative_count, req.cumulative_amount) == (0, 10, 10 * PRICE)
    assert sorted(p.seq for p in results.values()) == list(range(10))
    for i, permit in results.items():
        stored = store.permits_for(MODEL_ID, qh(i))
        assert stored == [permit]
        assert verify_permission(OWNER.public_key, CHAIN_ID, MODEL_ID, HOST.address,
                                 permit.seq, qh(i), permit.signature,
                                 issued_height=permit.issued_height)
    voucher = store.voucher(MODEL_ID)
    assert (voucher.count, voucher.amount) == (10, 10 * PRICE)
    assert verify_voucher(HOST.public_key, CHAIN_ID, MODEL_ID, HOST.address, 10, 10 * PRICE,
                          voucher.signature)


async def test_a_refused_batch_leaves_no_gap(store):
    owner = FakeOwner()
    permitter = make_permitter(store, owner, window_s=0)
    await run_permitter(permitter, [qh(0), qh(1)])
    count = store.voucher(MODEL_ID).count
    owner.refuse = Refusal.ESCROW_EXHAUSTED
    results = await run_permitter(permitter, [qh(5), qh(6), qh(7)])
    assert all(isinstance(r, PermissionRefused) and r.code == Refusal.ESCROW_EXHAUSTED
               for r in results.values())
    assert store.voucher(MODEL_ID).count == count  # unchanged: nothing was paid
    assert store.permits_for(MODEL_ID, qh(5)) == []
    owner.refuse = None
    results = await run_permitter(permitter, [qh(5)])
    assert owner.requests[-1].first_seq == count  # the refused seqs are reused
    assert results[0].seq == count


async def test_voucher_stale_resyncs_to_the_owners_count(store):
    owner = FakeOwner(count=40, amount=40 * PRICE)  # e.g. a grant we never stored (crash)
    permitter = make_permitter(store, owner, window_s=0)
    results = await run_permitter(permitter, [qh(1)])
    assert results[0].seq == 40
    assert [r.first_seq for r in owner.requests] == [0, 40]
    assert store.voucher(MODEL_ID).count == 41


async def test_claim_pending_refuses_only_the_claimed_query(store):
    owner = FakeOwner(refuse_hash=qh(2))
    permitter = make_permitter(store, owner, window_s=0.05)
    results = await run_permitter(permitter, [qh(i) for i in range(4)])
    assert isinstance(results[2], PermissionRefused)
    assert results[2].code == Refusal.CLAIM_PENDING
    granted = sorted(r.seq for i, r in results.items() if i != 2)
    assert granted == [0, 1, 2]  # no gap: the refused query took no seq
    assert store.voucher(MODEL_ID).count == 3


async def test_a_query_cancelled_before_its_batch_is_not_bought(store):
    owner = FakeOwner(gate=trio.Event())
    permitter = make_permitter(store, owner, window_s=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(permitter.run)
        first = trio.CancelScope()
        results: dict = {}

        async def waiting() -> None:
            with first:
                results["a"] = await permitter.permit(qh(0))  # in flight (gated)

        nursery.start_soon(waiting)
        with trio.fail_after(5):
            while not owner.requests:
                await trio.sleep(0.001)
        late = trio.CancelScope()

        async def late_one() -> None:
            with late:
                await permitter.permit(qh(1))  # queued behind the gated batch

        nursery.start_soon(late_one)
        await trio.testing.wait_all_tasks_blocked()
        late.cancel()
        owner.gate.set()
        with trio.fail_after(5):
            while "a" not in results:
                await trio.sleep(0.001)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert len(owner.requests) == 1 and store.voucher(MODEL_ID).count == 1


async def test_a_grant_that_does_not_verify_is_refused_but_paid(store):
    class Forger(FakeOwner):
        async def request(self, req):
            await super().request(req)
            return PermissionGrant(issued_height=5, signatures=(b"\x00" * 64,))

    owner = Forger()
    permitter = make_permitter(store, owner, window_s=0)
    results = await run_permitter(permitter, [qh(0)])
    assert isinstance(results[0], PermissionRefused) and "do not verify" in results[0].message
    assert store.permits_for(MODEL_ID, qh(0)) == []
    assert store.voucher(MODEL_ID).count == 1  # the owner holds that voucher


async def test_state_survives_a_restart(tmp_path: Path):
    owner = FakeOwner()
    store = HostStore.open(tmp_path / "host")
    await run_permitter(make_permitter(store, owner), [qh(0), qh(1)])
    store.close()
    store = HostStore.open(tmp_path / "host")
    results = await run_permitter(make_permitter(store, owner), [qh(0)])
    assert results[0].seq == 2 and len(store.permits_for(MODEL_ID, qh(0))) == 2
    assert store.permit_count() == 3
    store.close()


async def test_unknown_model_is_refused_without_asking(store):
    owner = FakeOwner()
    owner.ledger.model = lambda model_id: None  # type: ignore[method-assign]
    results = await run_permitter(make_permitter(store, owner), [qh(0)])
    assert isinstance(results[0], PermissionRefused) and results[0].code is None
    assert owner.requests == []


async def test_a_failing_source_refuses_its_batch_and_the_loop_goes_on(store):
    class Broken(FakeOwner):
        fail = True

        async def request(self, req):
            if self.fail:
                self.fail = False
                raise RuntimeError("bug in the source")
            return await super().request(req)

    owner = Broken()
    permitter = make_permitter(store, owner, window_s=0)
    results = await run_permitter(permitter, [qh(0)])
    assert isinstance(results[0], PermissionRefused) and results[0].code is None
    results = await run_permitter(permitter, [qh(1)])
    assert results[0].seq == 0  # the failed batch left no gap
