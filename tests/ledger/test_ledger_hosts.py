"""request_access, commit_omlization, fund_channel and the two-step withdrawal."""

from __future__ import annotations

from ledger_helpers import (
    ADDR,
    MODEL,
    PACKAGE,
    PACKAGE_BLOB,
    START_BALANCE,
    WEIGHTS,
    draft,
    file_claim,
    make_fingerprints,
    setup_oml,
)

from node.ledger import (
    BeginWithdrawalBody,
    Code,
    CommitOmlizationBody,
    CompleteWithdrawalBody,
    FundChannelBody,
    HostStatus,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    Role,
)


def register(chain, min_collateral=1_000):
    chain.ok("owner", RegisterModelBody(model_id=MODEL, weights_hash=WEIGHTS,
                                        min_collateral=min_collateral,
                                        omlizers=(ADDR["omlizer"],)))


def commit(fp_count=4, host="host", root=None):
    root = root or make_fingerprints(MODEL, ADDR[host], fp_count).root
    return CommitOmlizationBody(model_id=MODEL, host=ADDR[host], package_hash=PACKAGE,
                                fp_root=root, fp_count=fp_count, package_blob=PACKAGE_BLOB)


def test_request_access_locks_collateral(chain):
    register(chain)
    r = chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=5_000, endpoint="http://x"))
    rec = chain.ledger.host(MODEL, ADDR["host"])
    assert rec.status == HostStatus.PENDING and rec.collateral == 5_000
    assert rec.endpoint == "http://x" and rec.generation == 0
    assert chain.balance("host") == START_BALANCE - 5_000
    assert r.events[0].attrs["collateral"] == 5_000
    assert rec.to_json()["status"] == "pending"


def test_request_access_failures(chain):
    chain.fail("host", RequestAccessBody(model_id=MODEL, collateral=5_000), Code.NOT_FOUND)
    register(chain)
    chain.fail("host", RequestAccessBody(model_id=MODEL, collateral=999), Code.BELOW_MINIMUM)
    chain.fail("host", RequestAccessBody(model_id=MODEL, collateral=START_BALANCE + 1),
               Code.INSUFFICIENT_FUNDS)
    chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=1_000))
    chain.fail("host", RequestAccessBody(model_id=MODEL, collateral=1_000), Code.ALREADY_EXISTS)


def test_commit_omlization_by_authorised_omlizer(chain):
    register(chain)
    chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=1_000))
    chain.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
    assert chain.ledger.host(MODEL, ADDR["host"]).package_blob == b""  # pending: none yet
    r = chain.ok("omlizer", commit())
    rec = chain.ledger.host(MODEL, ADDR["host"])
    assert rec.status == HostStatus.ACTIVE and rec.omlizer == ADDR["omlizer"]
    assert rec.fp_count == 4 and rec.package_hash == PACKAGE
    assert rec.package_blob == PACKAGE_BLOB and type(rec).decode(rec.encode()) == rec
    assert rec.to_json()["package_blob"] == PACKAGE_BLOB.hex()
    assert r.events[0].attrs["package_blob"] == PACKAGE_BLOB.hex()
    chain.fail("omlizer", commit(), Code.WRONG_STATE)  # already committed


def test_commit_omlization_unauthorised(chain):
    register(chain)
    chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=1_000))
    # registered OMLizer, but not one the owner listed
    chain.ok("alice", RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
    chain.fail("alice", commit(), Code.UNAUTHORIZED)
    # listed by the owner, but never registered (no bond)
    chain.fail("omlizer", commit(), Code.UNAUTHORIZED)
    assert chain.ledger.host(MODEL, ADDR["host"]).status == HostStatus.PENDING


def test_commit_omlization_unknown_host_model_and_too_many_fps(make_chain):
    c = make_chain(params={"max_fp_count": 8})
    c.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
    c.fail("omlizer", commit(), Code.NOT_FOUND)  # no model
    register(c)
    c.fail("omlizer", commit(), Code.NOT_FOUND)  # no host
    c.ok("host", RequestAccessBody(model_id=MODEL, collateral=1_000))
    c.fail("omlizer", commit(fp_count=9), Code.INVALID_ARGUMENT)
    c.ok("omlizer", commit(fp_count=8))


def test_fund_channel(chain):
    register(chain)
    chain.fail("host", FundChannelBody(model_id=MODEL, amount=10), Code.NOT_FOUND)
    chain.ok("host", RequestAccessBody(model_id=MODEL, collateral=1_000))
    chain.ok("host", FundChannelBody(model_id=MODEL, amount=300))
    chain.ok("host", FundChannelBody(model_id=MODEL, amount=200))
    assert chain.ledger.host(MODEL, ADDR["host"]).escrow == 500
    assert chain.balance("host") == START_BALANCE - 1_500
    chain.fail("host", FundChannelBody(model_id=MODEL, amount=0), Code.INVALID_ARGUMENT)
    chain.fail("host", FundChannelBody(model_id=MODEL, amount=START_BALANCE),
               Code.INSUFFICIENT_FUNDS)


def test_withdrawal_two_steps(make_chain):
    c = make_chain(params={"unbonding_delay": 5})
    register(c)
    c.ok("host", RequestAccessBody(model_id=MODEL, collateral=2_000))
    c.ok("host", FundChannelBody(model_id=MODEL, amount=500))
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.WRONG_STATE)  # not begun
    c.ok("host", BeginWithdrawalBody(model_id=MODEL))
    begun = c.ledger.height
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.status == HostStatus.UNBONDING and rec.unbonding_height == begun
    c.fail("host", BeginWithdrawalBody(model_id=MODEL), Code.WRONG_STATE)
    c.fail("host", FundChannelBody(model_id=MODEL, amount=1), Code.WRONG_STATE)
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.TOO_EARLY)  # at begun + 3
    assert c.ledger.height == begun + 3
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.TOO_EARLY)  # at begun + 4
    c.ok("host", CompleteWithdrawalBody(model_id=MODEL))  # at begun + 5
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.status == HostStatus.WITHDRAWN and rec.collateral == 0 and rec.escrow == 0
    assert c.balance("host") == START_BALANCE
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.WRONG_STATE)


def test_withdrawal_blocked_by_open_claim_filed_during_unbonding(make_chain):
    c = make_chain(params={"unbonding_delay": 1, "reveal_window": 5, "claim_bond_bp": 0,
                           "claim_min_matches": 4})
    fps = setup_oml(c)
    c.ok("host", BeginWithdrawalBody(model_id=MODEL))
    d = draft(fps, (0, 1, 2, 3))
    c.ok("prover", d.commit())
    # a commitment already holds the host, before anyone can see what it claims
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.OPEN_CLAIMS)
    c.ok("prover", d.open(0))
    c.fail("host", CompleteWithdrawalBody(model_id=MODEL), Code.OPEN_CLAIMS)
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 1
    c.advance(4)  # the claim expires unrevealed
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 0
    c.ok("host", CompleteWithdrawalBody(model_id=MODEL))


def test_rerequest_after_withdrawal_starts_new_generation(make_chain):
    c = make_chain(params={"unbonding_delay": 0, "claim_bond_bp": 0, "claim_min_matches": 4})
    fps = setup_oml(c)
    file_claim(c, draft(fps, (0, 1, 2, 3), outputs={i: "x" for i in range(4)}))
    c.advance(20)  # expires; the silent OMLizer pays the prover 100 from its bond
    c.ok("host", BeginWithdrawalBody(model_id=MODEL))
    c.ok("host", CompleteWithdrawalBody(model_id=MODEL))
    c.fail("prover", draft(fps, (1, 2, 3, 4)).commit(), Code.WRONG_STATE)
    c.ok("host", RequestAccessBody(model_id=MODEL, collateral=10_000))
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.generation == 1 and rec.status == HostStatus.PENDING and rec.fp_count == 0
    assert rec.package_blob == b""  # the old generation's package is not this grant's
    c.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=100))  # back to the minimum
    c.ok("omlizer", commit(fp_count=5, root=fps.root))
    # index 0 was burned in generation 0 only
    file_claim(c, draft(fps, (0, 1, 2, 3)))
