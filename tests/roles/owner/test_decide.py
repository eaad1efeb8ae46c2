"""The owner's grant-or-refuse decision, rule by rule (pure: no node, disk or clock)."""

from __future__ import annotations

import dataclasses

import pytest

from consensus.crypto import PrivateKey
from node.ledger.records import HostRecord, HostStatus, Model
from node.ledger.vouchers import sign_voucher
from node.roles.owner.decide import (
    Grant,
    LastBatch,
    Refuse,
    Replay,
    Voucher,
    baseline,
    decide,
)
from node.roles.owner.protocol import PermissionRequest, Refusal, parse_stale_message

CHAIN = "owner-test"
OWNER = PrivateKey(b"\x01" * 32)
HOST = PrivateKey(b"\x02" * 32)
STRANGER = PrivateKey(b"\x03" * 32)
MODEL_ID = b"model-a"
PRICE = 7


def model(**kw: object) -> Model:
    base = dict(model_id=MODEL_ID, owner=OWNER.address, owner_pubkey=OWNER.public_key,
                weights_hash=b"\x00" * 32, metadata=b"", price_per_query=PRICE,
                min_collateral=0, omlizers=(), splits=(), parent=b"", royalty_bp=0, depth=0,
                registered_height=1)
    base.update(kw)
    return Model(**base)  # type: ignore[arg-type]


def host(**kw: object) -> HostRecord:
    base = dict(model_id=MODEL_ID, host=HOST.address, host_pubkey=HOST.public_key,
                status=HostStatus.ACTIVE, escrow=1_000)
    base.update(kw)
    return HostRecord(**base)  # type: ignore[arg-type]


def request(first_seq: int = 0, n: int = 3, *, amount: int | None = None,
            key: PrivateKey = HOST, prev_amount: int = 0, hashes: tuple[bytes, ...] = ()
            ) -> PermissionRequest:
    count = first_seq + n
    amount = prev_amount + PRICE * n if amount is None else amount
    sig = sign_voucher(key, CHAIN, MODEL_ID, count, amount)
    return PermissionRequest(
        model_id=MODEL_ID, host=HOST.address, first_seq=first_seq,
        query_hashes=hashes or tuple(bytes([i]) * 32 for i in range(n)),
        cumulative_count=count, cumulative_amount=amount, voucher_signature=sig)


def run(req: PermissionRequest, **kw: object) -> Grant | Replay | Refuse:
    args: dict[str, object] = dict(chain_id=CHAIN, owner=OWNER.address, model=model(),
                                   host=host(), stored=None, pending_claims=())
    args.update(kw)
    return decide(req, **args)  # type: ignore[arg-type]


def refused(verdict: Grant | Replay | Refuse, code: Refusal) -> str:
    assert isinstance(verdict, Refuse), verdict
    assert verdict.code == code, verdict
    return verdict.message


def test_first_batch_is_granted_and_becomes_the_stored_voucher() -> None:
    req = request()
    verdict = run(req)
    assert isinstance(verdict, Grant)
    assert verdict.voucher == Voucher(cumulative_count=3, cumulative_amount=21,
                                      signature=req.voucher_signature)


def test_next_batch_continues_the_stored_voucher() -> None:
    stored = Voucher(cumulative_count=3, cumulative_amount=21, signature=b"s" * 64)
    assert isinstance(run(request(3, 2, prev_amount=21), stored=stored), Grant)


@pytest.mark.parametrize("m", [None, "other"])
def test_not_owner(m: str | None) -> None:
    mod = None if m is None else model(owner=STRANGER.address)
    refused(run(request(), model=mod), Refusal.NOT_OWNER)


@pytest.mark.parametrize("status", [HostStatus.PENDING, HostStatus.UNBONDING,
                                    HostStatus.WITHDRAWN, None])
def test_host_not_active(status: HostStatus | None) -> None:
    rec = None if status is None else host(status=status)
    msg = refused(run(request(), host=rec), Refusal.HOST_NOT_ACTIVE)
    if status is not None:
        assert status.name.lower() in msg


def test_voucher_signed_by_someone_else_is_bad() -> None:
    refused(run(request(key=STRANGER)), Refusal.BAD_VOUCHER)


def test_voucher_fields_changed_after_signing_are_bad() -> None:
    req = request()
    forged = dataclasses.replace(req, cumulative_amount=req.cumulative_amount - 1)
    refused(run(forged), Refusal.BAD_VOUCHER)


@pytest.mark.parametrize("first_seq", [0, 2, 4, 100])
def test_batch_not_right_after_the_stored_voucher_is_stale(first_seq: int) -> None:
    stored = Voucher(cumulative_count=3, cumulative_amount=21, signature=b"s" * 64)
    msg = refused(run(request(first_seq, 2, prev_amount=21), stored=stored),
                  Refusal.VOUCHER_STALE)
    assert parse_stale_message(msg) == 3


def test_without_a_stored_voucher_the_chain_redeemed_totals_are_the_baseline() -> None:
    rec = host(redeemed_count=10, redeemed_amount=70)
    assert parse_stale_message(refused(run(request(0), host=rec),
                                       Refusal.VOUCHER_STALE)) == 10
    assert isinstance(run(request(10, 2, prev_amount=70), host=rec), Grant)


def test_a_stored_voucher_behind_the_chain_yields_to_the_chain() -> None:
    stored = Voucher(cumulative_count=3, cumulative_amount=21, signature=b"s" * 64)
    rec = host(redeemed_count=5, redeemed_amount=35)
    assert baseline(stored, rec) == (5, 35)
    assert baseline(stored, host(redeemed_count=3, redeemed_amount=21)) == (3, 21)


@pytest.mark.parametrize("delta", [-PRICE, -1, 1, PRICE])
def test_amount_must_be_price_times_count(delta: int) -> None:
    refused(run(request(amount=3 * PRICE + delta)), Refusal.BAD_VOUCHER)


def test_a_price_change_applies_to_the_next_batch_only() -> None:
    stored = Voucher(cumulative_count=3, cumulative_amount=21, signature=b"s" * 64)
    req = request(3, 2, amount=21 + 2 * 50)
    assert isinstance(run(req, stored=stored, model=model(price_per_query=50)), Grant)


def test_escrow_covers_exactly_the_unredeemed_amount() -> None:
    assert isinstance(run(request(), host=host(escrow=21)), Grant)
    msg = refused(run(request(), host=host(escrow=20)), Refusal.ESCROW_EXHAUSTED)
    assert "20" in msg


def test_escrow_counts_only_what_is_not_redeemed_yet() -> None:
    stored = Voucher(cumulative_count=100, cumulative_amount=700, signature=b"s" * 64)
    rec = host(escrow=14, redeemed_count=100, redeemed_amount=700)
    assert isinstance(run(request(100, 2, prev_amount=700), stored=stored, host=rec), Grant)
    rec = host(escrow=14, redeemed_count=99, redeemed_amount=693)
    refused(run(request(100, 2, prev_amount=700), stored=stored, host=rec),
            Refusal.ESCROW_EXHAUSTED)


def test_a_query_named_by_a_pending_claim_is_refused() -> None:
    req = request()
    refused(run(req, pending_claims={req.query_hashes[1]}), Refusal.CLAIM_PENDING)
    assert isinstance(run(req, pending_claims={b"\xff" * 32}), Grant)


def test_free_model_needs_no_escrow() -> None:
    assert isinstance(run(request(amount=0), model=model(price_per_query=0),
                          host=host(escrow=0)), Grant)


def test_rules_apply_in_order() -> None:
    """A request wrong in every way gets the first rule's code."""
    bad = request(5, key=STRANGER)
    refused(run(bad, model=None, host=None), Refusal.NOT_OWNER)
    refused(run(bad, host=None), Refusal.HOST_NOT_ACTIVE)
    refused(run(bad), Refusal.BAD_VOUCHER)
    refused(run(request(5), host=host(escrow=0)), Refusal.VOUCHER_STALE)


def test_an_exact_retry_of_the_last_batch_is_replayed() -> None:
    req = request()
    verdict = run(req)
    assert isinstance(verdict, Grant)
    last = LastBatch(first_seq=0, query_hashes=req.query_hashes, issued_height=9)
    assert run(req, stored=verdict.voucher, last_batch=last) == Replay(9)
    # the same seqs for other queries are no retry: stale
    other = request(hashes=(b"\x07" * 32, b"\x08" * 32, b"\x09" * 32))
    refused(run(other, stored=verdict.voucher, last_batch=last), Refusal.VOUCHER_STALE)
    # a retry of an older batch is stale too
    older = LastBatch(first_seq=3, query_hashes=req.query_hashes, issued_height=9)
    refused(run(req, stored=verdict.voucher, last_batch=older), Refusal.VOUCHER_STALE)
    # and a host that is no longer active gets nothing, not even a replay
    refused(run(req, stored=verdict.voucher, last_batch=last,
                host=host(status=HostStatus.UNBONDING)), Refusal.HOST_NOT_ACTIVE)
