"""Claims: submit, reveal against the commitment, rebut with a permission string,
expiry, slashing at the end of the challenge window, burned indices."""

from __future__ import annotations

import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, MODEL, START_BALANCE, setup_oml

from node.ledger import (
    ClaimStatus,
    Code,
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


def permission(query, seq=1, signer="owner"):
    return sign_permission(KEYS[signer], CHAIN, MODEL, ADDR["host"], seq, query)


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
    sig = permission("Hello?")
    assert verify_permission(KEYS["owner"].public_key, CHAIN, MODEL, ADDR["host"], 1,
                             query_hash("Hello?"), sig)
    assert not verify_permission(KEYS["owner"].public_key, CHAIN, MODEL, ADDR["host"], 2,
                                 query_hash("Hello?"), sig)
    assert query_hash("e\u0301") == query_hash("\u00e9")  # NFC normalisation


def test_rebut_with_owner_permission_dismisses(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    c.ok("omlizer", reveal(fps, 0))
    before = c.balance("prover")
    c.ok("host", RebutBody(claim_id=0, seq=42, signature=permission(fps.keys[0], seq=42)))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    assert c.balance("prover") == before + 100
    c.advance(5)
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.collateral == COLLATERAL and rec.open_claims == 0


def test_rebut_before_reveal(oml):
    c, fps = oml
    c.ok("prover", claim(fps))
    c.ok("host", RebutBody(claim_id=0, seq=1, signature=permission(fps.keys[0])))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    c.advance(7)  # nothing due any more
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED


def test_rebut_failures(oml):
    c, fps = oml
    c.fail("host", RebutBody(claim_id=0, seq=1, signature=bytes(64)), Code.NOT_FOUND)
    c.ok("prover", claim(fps))
    c.ok("omlizer", reveal(fps, 0))
    good = permission(fps.keys[0])
    # a permission string for another query
    c.fail("host", RebutBody(claim_id=0, seq=1, signature=permission(fps.keys[1])),
           Code.BAD_PERMISSION)
    c.fail("host", RebutBody(claim_id=0, seq=2, signature=good), Code.BAD_PERMISSION)  # wrong seq
    c.fail("host", RebutBody(claim_id=0, seq=1, signature=permission(fps.keys[0], signer="alice")),
           Code.BAD_PERMISSION)  # not signed by the owner
    c.fail("alice", RebutBody(claim_id=0, seq=1, signature=good), Code.UNAUTHORIZED)
    c.advance(6)  # slashed
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    c.fail("host", RebutBody(claim_id=0, seq=1, signature=good), Code.WRONG_STATE)


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
    from ledger_helpers import PACKAGE, make_fingerprints

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
                                  fp_root=bob_fps.root, fp_count=3)
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
