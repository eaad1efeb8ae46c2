"""Voucher redemption: exact split arithmetic, monotonic vouchers, escrow cap."""

from __future__ import annotations

from ledger_helpers import ADDR, CHAIN, KEYS, MODEL, START_BALANCE, WEIGHTS

from node.ledger import (
    Code,
    FundChannelBody,
    RedeemBody,
    RegisterModelBody,
    RequestAccessBody,
    sign_voucher,
    verify_voucher,
)


def voucher(count, amount, signer="host", model_id=MODEL, chain_id=CHAIN):
    sig = sign_voucher(KEYS[signer], chain_id, model_id, count, amount)
    return RedeemBody(model_id=model_id, host=ADDR["host"], cumulative_count=count,
                      cumulative_amount=amount, signature=sig)


def open_channel(chain, escrow=10_000, splits=(), parent=b""):
    chain.ok("owner", RegisterModelBody(model_id=MODEL, weights_hash=WEIGHTS, splits=splits,
                                        parent=parent))
    chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=0))
    chain.ok("host", FundChannelBody(model_id=MODEL, amount=escrow))


def test_voucher_helpers_round_trip():
    sig = sign_voucher(KEYS["host"], CHAIN, MODEL, 3, 30)
    assert verify_voucher(KEYS["host"].public_key, CHAIN, MODEL, ADDR["host"], 3, 30, sig)
    assert not verify_voucher(KEYS["host"].public_key, CHAIN, MODEL, ADDR["host"], 3, 31, sig)
    assert not verify_voucher(KEYS["host"].public_key, "other", MODEL, ADDR["host"], 3, 30, sig)


def test_redeem_without_splits_pays_fee_and_owner(chain):
    open_channel(chain)
    r = chain.ok("owner", voucher(10, 1_000))
    fee = 1_000 * 100 // 10_000  # default protocol_fee_bp = 100
    assert chain.balance("proposer") == fee
    assert chain.balance("owner") == START_BALANCE + 1_000 - fee
    rec = chain.ledger.host(MODEL, ADDR["host"])
    assert (rec.escrow, rec.redeemed_amount, rec.redeemed_count) == (9_000, 1_000, 10)
    ev = r.events[0].attrs
    assert (ev["paid"], ev["fee"], ev["owner"]) == (1_000, fee, 1_000 - fee)


def test_redeem_pays_splits_and_parent_royalty_chain_exactly(make_chain):
    c = make_chain(params={"protocol_fee_bp": 250})
    # grandparent <- parent <- model; royalties are set by each ancestor's owner
    c.ok("grand_owner", RegisterModelBody(model_id=b"gp", weights_hash=WEIGHTS, royalty_bp=1_000))
    c.ok("parent_owner", RegisterModelBody(model_id=b"p", weights_hash=WEIGHTS, parent=b"gp",
                                           royalty_bp=2_000))
    open_channel(c, splits=((ADDR["contrib1"], 1_500), (ADDR["contrib2"], 333)), parent=b"p")
    before = {n: c.balance(n) for n in ("owner", "contrib1", "contrib2", "parent_owner",
                                        "grand_owner", "proposer")}
    c.ok("owner", voucher(7, 9_999))
    paid = 9_999
    fee = paid * 250 // 10_000                      # 249
    net = paid - fee                                # 9750
    s1, s2 = net * 1_500 // 10_000, net * 333 // 10_000  # 1462, 324
    rest = net - s1 - s2                            # 7964
    royalty = rest * 2_000 // 10_000                # 1592 to the parent chain
    to_grand = royalty * 1_000 // 10_000            # 159 of it to the grandparent
    gained = {n: c.balance(n) - before[n] for n in before}
    assert gained == {"proposer": fee, "contrib1": s1, "contrib2": s2,
                      "parent_owner": royalty - to_grand, "grand_owner": to_grand,
                      "owner": rest - royalty}
    assert sum(gained.values()) == paid
    assert (fee, s1, s2, royalty, to_grand) == (249, 1_462, 324, 1_592, 159)


def test_redeem_is_incremental_and_monotonic(chain):
    open_channel(chain)
    chain.ok("owner", voucher(1, 100))
    chain.ok("owner", voucher(5, 600))  # pays the 500 difference
    assert chain.ledger.host(MODEL, ADDR["host"]).redeemed_amount == 600
    chain.fail("owner", voucher(5, 600), Code.NOTHING_TO_REDEEM)   # replayed voucher
    chain.fail("owner", voucher(1, 100), Code.BAD_VOUCHER)          # older voucher
    chain.fail("owner", voucher(4, 700), Code.BAD_VOUCHER)          # count goes back
    assert chain.ledger.host(MODEL, ADDR["host"]).escrow == 10_000 - 600


def test_redeem_never_exceeds_escrow(chain):
    open_channel(chain, escrow=300)
    r = chain.ok("owner", voucher(10, 1_000))
    assert r.events[0].attrs["paid"] == 300 and r.events[0].attrs["unpaid"] == 700
    rec = chain.ledger.host(MODEL, ADDR["host"])
    assert (rec.escrow, rec.redeemed_amount) == (0, 300)
    chain.fail("owner", voucher(10, 1_000), Code.NOTHING_TO_REDEEM)  # escrow empty
    chain.ok("host", FundChannelBody(model_id=MODEL, amount=1_000))
    chain.ok("owner", voucher(10, 1_000))  # the same voucher cashes the rest
    rec = chain.ledger.host(MODEL, ADDR["host"])
    assert (rec.escrow, rec.redeemed_amount) == (300, 1_000)


def test_redeem_failures(chain):
    chain.fail("owner", voucher(1, 10), Code.NOT_FOUND)  # no model
    open_channel(chain)
    chain.fail("alice", voucher(1, 10), Code.UNAUTHORIZED)             # not the owner
    chain.fail("owner", voucher(1, 10, signer="alice"), Code.BAD_VOUCHER)  # not the host's key
    chain.fail("owner", voucher(1, 10, chain_id="other"), Code.BAD_VOUCHER)
    bad_host = RedeemBody(model_id=MODEL, host=ADDR["bob"], cumulative_count=1,
                          cumulative_amount=10, signature=bytes(64))
    chain.fail("owner", bad_host, Code.NOT_FOUND)
    chain.fail("owner", voucher(0, 0), Code.NOTHING_TO_REDEEM)
