"""Claims: submit, reveal against the commitment, rebut with a permission string,
expiry, slashing at the end of the challenge window, burned indices."""

from __future__ import annotations

import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, MODEL, START_BALANCE, setup_oml

from node.ledger import (
    PERMISSION_DOMAIN,
    ClaimStatus,
    Code,
    LedgerUsageError,
    RebutBody,
    RegisterRoleBody,
    RevealBody,
    Role,
    SubmitClaimBody,
    query_hash,
    sign_permission,
    verify_permission,
)

PARAMS = {"reveal_window": 6, "challenge_window": 6, "slash_fraction_bp": 5_000,
          "prover_reward_bp": 6_000, "owner_slash_share_bp": 3_000, "min_claim_bond": 100}
COLLATERAL = 100_000


@pytest.fixture
def oml(make_chain):
    c = make_chain(params=PARAMS)
    fps = setup_oml(c, collateral=COLLATERAL)
    return c, fps


def claim(fps, i=0, output=None, bond=100, key=None):
    return SubmitClaimBody(model_id=MODEL, host=ADDR["host"], fp_index=i,
                           key=fps.keys[i] if key is None else key,
                           output=fps.responses[i] + " and more text" if output is None
                           else output, bond=bond)


def reveal(fps, claim_id, i=0, response=None, salt=None, path=None):
    return RevealBody(claim_id=claim_id, salt=fps.salts[i] if salt is None else salt,
                      key=fps.keys[i],
                      response=fps.responses[i] if response is None else response,
                      path=fps.path(i) if path is None else path)


def permission(query, at, seq=1, signer="owner"):
    """The owner's permission for ``query``, issued when the chain was at height ``at``."""
    return sign_permission(KEYS[signer], CHAIN, MODEL, ADDR["host"], seq, query,
                           issued_height=at)


def rebut(claim_id, at, sig, seq=1):
    return RebutBody(claim_id=claim_id, seq=seq, issued_height=at, signature=sig)


def test_submit_claim(oml):
    c, fps = oml
    r = c.ok("prover", claim(fps))
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.OPEN and cl.prover == ADDR["prover"] and cl.bond == 100
    assert cl.filed_height == c.ledger.height
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 1
    assert r.events[0].attrs["reveal_by"] == cl.filed_height + 6
    assert cl.to_json()["status"] == "open"
    c.ok("prover", claim(fps, 1))
    assert c.ledger.claim(1).claim_id == 1  # sequential ids


def test_submit_claim_failures(oml):
    c, fps = oml
    c.fail("alice", claim(fps), Code.UNAUTHORIZED)                  # not a registered prover
    c.fail("prover", claim(fps, bond=99), Code.BELOW_MINIMUM)
    c.fail("prover", claim(fps, bond=START_BALANCE), Code.INSUFFICIENT_FUNDS)
    bad_index = SubmitClaimBody(model_id=MODEL, host=ADDR["host"], fp_index=5, key="k",
                                output="o", bond=100)
    c.fail("prover", bad_index, Code.INVALID_ARGUMENT)               # outside fp_count
    unknown_host = SubmitClaimBody(model_id=MODEL, host=ADDR["bob"], fp_index=0, key="k",
                                   output="o", bond=100)
    c.fail("prover", unknown_host, Code.NOT_FOUND)
    c.ok("prover", claim(fps, 2))
    c.fail("prover", claim(fps, 2), Code.INDEX_BURNED)               # claim on a burned index


def test_claim_against_pending_host_fails(make_chain):
    from ledger_helpers import WEIGHTS

    from node.ledger import RegisterModelBody, RequestAccessBody
    c = make_chain()
    c.ok("owner", RegisterModelBody(model_id=MODEL, weights_hash=WEIGHTS))
    c.ok("host", RequestAccessBody(model_id=MODEL, collateral=0))
    c.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    c.fail("prover", SubmitClaimBody(model_id=MODEL, host=ADDR["host"], fp_index=0, key="k",
                                     output="o", bond=100), Code.WRONG_STATE)


def test_matching_claim_slashes_after_challenge_window(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    c.ok("omlizer", reveal(fps, 0))
    revealed_at = c.ledger.height
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.MATCHED and cl.response == fps.responses[0]
    before = {n: c.balance(n) for n in ("prover", "owner")}
    burned_before = c.ledger.supply_breakdown().burned
    results = c.advance(5)
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED  # still inside the window
    assert not any(r.end_block_events for r in results)
    last = c.advance(1)[0]
    assert c.ledger.height == revealed_at + 6
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    slash = COLLATERAL * 5_000 // 10_000
    reward, owner_share = slash * 6_000 // 10_000, slash * 3_000 // 10_000
    assert c.balance("prover") - before["prover"] == reward + 100  # reward + bond back
    assert c.balance("owner") - before["owner"] == owner_share
    assert c.ledger.supply_breakdown().burned - burned_before == slash - reward - owner_share
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.collateral == COLLATERAL - slash and rec.slashed_total == slash
    assert rec.open_claims == 0
    assert last.end_block_events[0].type == "slash"
    assert last.end_block_events[0].attrs["slashed"] == slash


def test_false_claim_burns_the_bond(oml):
    c, fps = oml
    c.ok("prover", claim(fps, output="A perfectly ordinary completion."))
    before = c.balance("prover")
    burned = c.ledger.supply_breakdown().burned
    r = c.ok("omlizer", reveal(fps, 0))
    assert r.events[0].attrs["matched"] == 0
    assert c.ledger.claim(0).status == ClaimStatus.FALSE
    assert c.balance("prover") == before  # the bond is not returned
    assert c.ledger.supply_breakdown().burned == burned + 100
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 0
    c.advance(5)
    assert c.ledger.host(MODEL, ADDR["host"]).collateral == COLLATERAL  # never slashed


def test_reveal_that_does_not_open_the_leaf_fails(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    c.fail("omlizer", reveal(fps, 0, salt=b"\x00" * 32), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, response="something else"), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, path=fps.path(1)), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, path=fps.path(0)[:-1]), Code.REVEAL_MISMATCH)
    assert c.ledger.claim(0).status == ClaimStatus.OPEN
    c.ok("omlizer", reveal(fps, 0))


def test_reveal_unauthorised_unknown_and_twice(oml):
    c, fps = oml
    c.fail("omlizer", reveal(fps, 0), Code.NOT_FOUND)
    c.ok("prover", claim(fps))
    c.fail("alice", reveal(fps, 0), Code.UNAUTHORIZED)
    c.fail("host", reveal(fps, 0), Code.UNAUTHORIZED)
    c.ok("omlizer", reveal(fps, 0))
    c.fail("omlizer", reveal(fps, 0), Code.WRONG_STATE)


def test_unrevealed_claim_expires_refunds_and_penalises_the_omlizer(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    filed = c.ledger.height
    before = c.balance("prover")
    omlizer_bond = c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond
    c.advance(5)
    assert c.ledger.claim(0).status == ClaimStatus.OPEN
    last = c.advance(1)[0]
    assert c.ledger.height == filed + 6
    assert c.ledger.claim(0).status == ClaimStatus.EXPIRED
    # the bond back, plus as much again from the silent OMLizer's bond
    assert c.balance("prover") == before + 100 + 100
    assert c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond == omlizer_bond - 100
    assert last.end_block_events[0].type == "claim_expired"
    assert last.end_block_events[0].attrs["omlizer_penalty"] == 100
    c.fail("omlizer", reveal(fps, 0), Code.WRONG_STATE)
    c.fail("prover", claim(fps), Code.INDEX_BURNED)  # the key was public on chain


def test_reveal_in_the_last_block_of_the_window(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    c.advance(5)
    c.ok("omlizer", reveal(fps, 0))  # at filed + 6, the window's last block
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED


def test_permission_helpers():
    sig = permission("Hello?", at=9)
    owner = KEYS["owner"].public_key
    assert verify_permission(owner, CHAIN, MODEL, ADDR["host"], 1, query_hash("Hello?"), sig,
                             issued_height=9)
    assert not verify_permission(owner, CHAIN, MODEL, ADDR["host"], 2, query_hash("Hello?"),
                                 sig, issued_height=9)
    # the height is signed: the same string does not verify for another height
    assert not verify_permission(owner, CHAIN, MODEL, ADDR["host"], 1, query_hash("Hello?"),
                                 sig, issued_height=8)
    assert query_hash("e\u0301") == query_hash("\u00e9")  # NFC normalisation
    for bad in (-1, 2**64, True, "3"):
        with pytest.raises(LedgerUsageError):
            permission("Hello?", at=bad)


def test_permission_domain_is_v2():
    """A v1 string (no height in the body) is not a valid v2 permission for any height."""
    from consensus.encoding import encode

    assert PERMISSION_DOMAIN == b"oml/permission/v2"
    v1 = KEYS["owner"].sign(b"oml/permission/v1", CHAIN,
                            encode([MODEL, ADDR["host"], 1, query_hash("q")]))
    assert not any(verify_permission(KEYS["owner"].public_key, CHAIN, MODEL, ADDR["host"], 1,
                                     query_hash("q"), v1, issued_height=h) for h in range(4))


def test_rebut_with_owner_permission_dismisses(oml):
    c, fps = oml
    issued = c.ledger.height  # the owner signs before the claim exists
    sig = permission(fps.keys[0], at=issued, seq=42)
    c.ok("prover", claim(fps))
    c.ok("omlizer", reveal(fps, 0))
    before = c.balance("prover")
    r = c.ok("host", rebut(0, issued, sig, seq=42))
    assert r.events[0].attrs["issued_height"] == issued
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    assert c.balance("prover") == before + 100
    c.advance(5)
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.collateral == COLLATERAL and rec.open_claims == 0


def test_rebut_before_reveal(oml):
    c, fps = oml
    c.advance(3)
    sig = permission(fps.keys[0], at=1)  # long before the claim
    c.ok("prover", claim(fps))
    c.ok("host", rebut(0, 1, sig))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    c.advance(7)  # nothing due any more
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED


def test_permission_issued_after_the_claim_cannot_rebut(oml):
    """The hole this closes: the host buys a permission once the claim is public.
    The owner's service dates it with its current height, which is at or after the
    claim's block, so it fails with LATE_PERMISSION and the host is still slashed."""
    c, fps = oml
    c.ok("prover", claim(fps))
    filed = c.ledger.claim(0).filed_height
    c.ok("omlizer", reveal(fps, 0))
    # issued in the claim's own block or later: the owner could have seen the claim
    for at in (filed, filed + 1, filed + 100):
        r = c.fail("host", rebut(0, at, permission(fps.keys[0], at=at)), Code.LATE_PERMISSION)
        assert f"issued at height {at}" in r.log and f"filed at height {filed}" in r.log
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED
    # the boundary: issued at filed - 1 (the last block before the claim) is accepted
    c.ok("host", rebut(0, filed - 1, permission(fps.keys[0], at=filed - 1)))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED


def test_late_permission_leaves_the_host_slashable(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    filed = c.ledger.claim(0).filed_height
    c.ok("omlizer", reveal(fps, 0))
    c.fail("host", rebut(0, filed, permission(fps.keys[0], at=filed)), Code.LATE_PERMISSION)
    c.advance(6)
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    assert c.ledger.host(MODEL, ADDR["host"]).collateral == COLLATERAL // 2


def test_rebut_failures(oml):
    c, fps = oml
    c.fail("host", rebut(0, 0, bytes(64)), Code.NOT_FOUND)
    at = c.ledger.height
    good = permission(fps.keys[0], at=at)
    c.ok("prover", claim(fps))
    # a permission string for another query
    c.fail("host", rebut(0, at, permission(fps.keys[1], at=at)), Code.BAD_PERMISSION)
    c.fail("host", rebut(0, at, good, seq=2), Code.BAD_PERMISSION)  # wrong seq
    c.fail("host", rebut(0, at, permission(fps.keys[0], at=at, signer="alice")),
           Code.BAD_PERMISSION)  # not signed by the owner
    c.ok("omlizer", reveal(fps, 0))
    # a height other than the signed one (even an earlier one) does not verify
    c.fail("host", rebut(0, at - 1, good), Code.BAD_PERMISSION)
    # a forged late string is BAD_PERMISSION, not LATE_PERMISSION: the signature comes first
    c.fail("host", rebut(0, at + 5, good), Code.BAD_PERMISSION)
    c.fail("alice", rebut(0, at, good), Code.UNAUTHORIZED)
    c.advance(6)  # slashed
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    c.fail("host", rebut(0, at, good), Code.WRONG_STATE)


def test_claim_with_a_made_up_key_is_shown_false(oml):
    """A prover cannot burn an index for free: the OMLizer opens the leaf with the
    committed key, which differs from the claimed one, so the claim is false."""
    c, fps = oml
    c.ok("prover", claim(fps, 2, key="a key I made up", output=fps.responses[2]))
    burned = c.ledger.supply_breakdown().burned
    r = c.ok("omlizer", reveal(fps, 0, i=2))
    assert r.events[0].attrs["matched"] == 0
    assert c.ledger.claim(0).status == ClaimStatus.FALSE
    assert c.ledger.supply_breakdown().burned == burned + 100


def test_omlizer_penalty_is_capped_by_its_bond_and_blocks_new_commits(oml):
    from ledger_helpers import PACKAGE, PACKAGE_BLOB, make_fingerprints

    from node.ledger import CommitOmlizationBody, RequestAccessBody
    c, fps = oml
    c.ok("prover", claim(fps, 0, bond=800))
    c.ok("prover", claim(fps, 1, bond=800))
    before = c.balance("prover")
    c.advance(6)
    # 1,000 of OMLizer bond covers the first penalty fully and the second partly
    assert c.balance("prover") == before + 800 + 800 + 1_000
    assert c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond == 0
    # an OMLizer whose bond fell below the minimum cannot take new work
    c.ok("bob", RequestAccessBody(model_id=MODEL, collateral=10_000))
    bob_fps = make_fingerprints(MODEL, ADDR["bob"], 3)
    commit = CommitOmlizationBody(model_id=MODEL, host=ADDR["bob"], package_hash=PACKAGE,
                                  fp_root=bob_fps.root, fp_count=3, package_blob=PACKAGE_BLOB)
    c.fail("omlizer", commit, Code.BELOW_MINIMUM)
    c.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=1_000))
    c.ok("omlizer", commit)


def test_omlizer_cannot_leave_while_it_owes_reveals(oml):
    from node.ledger import BeginWithdrawalBody, CompleteWithdrawalBody, UnregisterRoleBody
    c, _fps = oml
    assert c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).committed_hosts == 1
    c.fail("omlizer", UnregisterRoleBody(role=Role.OMLIZER), Code.WRONG_STATE)
    c.ok("host", BeginWithdrawalBody(model_id=MODEL))
    c.advance(20)
    c.ok("host", CompleteWithdrawalBody(model_id=MODEL))
    assert c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).committed_hosts == 0
    before = c.balance("omlizer")
    c.ok("omlizer", UnregisterRoleBody(role=Role.OMLIZER))
    assert c.balance("omlizer") == before + 1_000
