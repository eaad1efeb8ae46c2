"""Claims: commit a hiding hash, open it in a later block, reveal each claimed leaf
against the commitment, rebut with a permission from before the commitment, lapse,
expiry, m-of-k matching, slashing at the end of the challenge window, burned indices."""

from __future__ import annotations

import pytest
from ledger_helpers import (
    ADDR,
    CHAIN,
    KEYS,
    MODEL,
    START_BALANCE,
    ClaimDraft,
    draft,
    file_claim,
    setup_oml,
)

from node.ledger import (
    PERMISSION_DOMAIN,
    ClaimStatus,
    Code,
    CommitClaimBody,
    ItemState,
    LedgerUsageError,
    OpenClaimBody,
    RebutBody,
    RegisterRoleBody,
    RevealBody,
    Role,
    query_hash,
    sign_permission,
    verify_permission,
)

M = 2  # claim_min_matches in these tests
PARAMS = {"reveal_window": 6, "challenge_window": 6, "slash_fraction_bp": 5_000,
          "prover_reward_bp": 6_000, "owner_slash_share_bp": 3_000, "min_claim_bond": 100,
          "claim_min_matches": M, "claim_open_window": 4, "claim_bond_bp": 0}
COLLATERAL = 100_000


@pytest.fixture
def oml(make_chain):
    c = make_chain(params=PARAMS)
    fps = setup_oml(c, collateral=COLLATERAL)
    return c, fps


def reveal(fps, claim_id, i=0, response=None, salt=None, path=None, key=None):
    return RevealBody(claim_id=claim_id, fp_index=i, salt=fps.salts[i] if salt is None else salt,
                      key=fps.keys[i] if key is None else key,
                      response=fps.responses[i] if response is None else response,
                      path=fps.path(i) if path is None else path)


def reveal_all(c, fps, claim_id):
    """The OMLizer reveals item after item until the claim is decided."""
    for i in c.ledger.claim(claim_id).indices:
        if c.ledger.claim(claim_id).status != ClaimStatus.OPEN:
            break
        c.ok("omlizer", reveal(fps, claim_id, i))


def permission(query, at, seq=1, signer="owner"):
    """The owner's permission for ``query``, issued when the chain was at height ``at``."""
    return sign_permission(KEYS[signer], CHAIN, MODEL, ADDR["host"], seq, query,
                           issued_height=at)


def rebut(claim_id, at, sig, seq=1, i=0):
    return RebutBody(claim_id=claim_id, fp_index=i, seq=seq, issued_height=at, signature=sig)


def test_commit_then_open_claim(oml):
    c, fps = oml
    d = draft(fps, (0, 1))
    r = c.ok("prover", d.commit())
    committed = c.ledger.height
    ev = r.events[0]
    assert ev.type == "claim_committed" and ev.attrs["claim_id"] == 0
    assert ev.attrs["open_by"] == committed + 4 and ev.attrs["bond"] == 100
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.COMMITTED and cl.prover == ADDR["prover"] and cl.bond == 100
    assert cl.committed_height == committed and cl.items == ()
    assert cl.commitment == d.commitment()
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 1  # holds the host already
    assert cl.to_json()["status"] == "committed"
    assert not c.ledger.index_burned(MODEL, ADDR["host"], 0)  # nothing public yet
    r = c.ok("prover", d.open(0))
    ev = r.events[0]
    assert ev.type == "claim_opened" and ev.attrs["indices"] == "0,1"
    assert ev.attrs["committed_height"] == committed  # what a rebuttal must predate
    assert ev.attrs["reveal_by"] == c.ledger.height + 6
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.OPEN and cl.opened_height == committed + 1
    assert cl.indices == (0, 1) and all(it[3] == ItemState.PENDING for it in cl.items)
    assert c.ledger.index_burned(MODEL, ADDR["host"], 0)
    assert c.ledger.index_burned(MODEL, ADDR["host"], 1)
    js = cl.to_json()
    assert js["status"] == "open" and js["items"][1]["fp_index"] == 1
    assert js["items"][0]["state"] == "pending" and js["matches"] == 0
    assert file_claim(c, draft(fps, (2, 3))) == 1  # sequential ids


def test_commit_claim_failures(oml):
    c, fps = oml
    d = draft(fps)
    c.fail("alice", d.commit(prover="alice"), Code.UNAUTHORIZED)    # not a registered prover
    c.fail("prover", d.commit(bond=99), Code.BELOW_MINIMUM)
    c.fail("prover", d.commit(bond=START_BALANCE), Code.INSUFFICIENT_FUNDS)
    unknown_host = CommitClaimBody(model_id=MODEL, host=ADDR["bob"], commitment=bytes(32),
                                   bond=100)
    c.fail("prover", unknown_host, Code.NOT_FOUND)


def test_open_claim_failures(make_chain):
    c = make_chain(params={**PARAMS, "claim_open_window": 20})
    fps = setup_oml(c, collateral=COLLATERAL)

    def committed(d: ClaimDraft) -> int:
        return int(c.ok("prover", d.commit()).events[0].attrs["claim_id"])

    c.fail("prover", draft(fps).open(0), Code.NOT_FOUND)
    # opening in the commitment's own block
    d = draft(fps, (0, 1))
    txs = [c.tx("prover", d.commit()), c.tx("prover", d.open(0))]
    res = c.block(txs).tx_results
    assert res[0].ok and res[1].code == Code.TOO_EARLY
    c.fail("alice", d.open(0), Code.UNAUTHORIZED)                   # not the committing prover
    # other items or another salt do not open the commitment
    c.fail("prover", draft(fps, (0, 2)).open(0), Code.BAD_OPENING)
    c.fail("prover", OpenClaimBody(claim_id=0, items=d.items, salt=bytes(32)), Code.BAD_OPENING)
    c.fail("prover", OpenClaimBody(claim_id=0, items=d.items[::-1], salt=d.salt),
           Code.BAD_OPENING)                                          # the order is committed
    c.ok("prover", d.open(0))
    c.fail("prover", d.open(0), Code.WRONG_STATE)                     # opened twice
    # fewer items than claim_min_matches, a repeated index, an index outside fp_count
    for bad, code in ((draft(fps, (2,)), Code.INVALID_ARGUMENT),
                      (draft(fps, (2, 2)), Code.INVALID_ARGUMENT),
                      (ClaimDraft(MODEL, ADDR["host"], ((2, "k", "o"), (5, "k", "o"))),
                       Code.INVALID_ARGUMENT),
                      (draft(fps, (2, 1)), Code.INDEX_BURNED)):       # 1 was opened by claim 0
        cid = committed(bad)
        c.fail("prover", bad.open(cid), code)
        assert c.ledger.claim(cid).status == ClaimStatus.COMMITTED


def test_claim_against_pending_host_fails(make_chain):
    from ledger_helpers import WEIGHTS

    from node.ledger import RegisterModelBody, RequestAccessBody
    c = make_chain()
    c.ok("owner", RegisterModelBody(model_id=MODEL, weights_hash=WEIGHTS))
    c.ok("host", RequestAccessBody(model_id=MODEL, collateral=0))
    c.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    c.fail("prover", CommitClaimBody(model_id=MODEL, host=ADDR["host"], commitment=bytes(32),
                                     bond=100), Code.WRONG_STATE)


def test_host_with_fewer_fingerprints_than_the_threshold_cannot_be_claimed(make_chain):
    c = make_chain(params={**PARAMS, "claim_min_matches": 6})
    fps = setup_oml(c, n_fp=5)
    c.fail("prover", draft(fps).commit(), Code.WRONG_STATE)


def test_unopened_commitment_lapses_and_burns_the_bond(oml):
    c, fps = oml
    c.ok("prover", draft(fps).commit())
    committed = c.ledger.height
    before, burned = c.balance("prover"), c.ledger.supply_breakdown().burned
    c.advance(3)
    assert c.ledger.claim(0).status == ClaimStatus.COMMITTED
    last = c.advance(1)[0]
    assert c.ledger.height == committed + 4
    assert c.ledger.claim(0).status == ClaimStatus.LAPSED
    assert last.end_block_events[0].type == "claim_lapsed"
    assert c.balance("prover") == before
    assert c.ledger.supply_breakdown().burned == burned + 100
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 0
    c.fail("prover", draft(fps).open(0), Code.WRONG_STATE)
    assert not c.ledger.index_burned(MODEL, ADDR["host"], 0)  # the keys never became public


def test_open_in_the_last_block_of_the_open_window(oml):
    c, fps = oml
    d = draft(fps)
    c.ok("prover", d.commit())
    c.advance(3)
    c.ok("prover", d.open(0))  # at committed + 4
    assert c.ledger.claim(0).status == ClaimStatus.OPEN


def test_matching_claim_slashes_after_challenge_window(oml):
    c, fps = oml
    file_claim(c, draft(fps, (0, 1)))
    r = c.ok("omlizer", reveal(fps, 0, 0))
    assert [e.type for e in r.events] == ["reveal"] and r.events[0].attrs["matched"] == 1
    assert c.ledger.claim(0).status == ClaimStatus.OPEN  # one item still to reveal
    r = c.ok("omlizer", reveal(fps, 0, 1))
    revealed_at = c.ledger.height
    assert [e.type for e in r.events] == ["reveal", "claim_matched"]
    assert r.events[1].attrs["matches"] == 2
    assert r.events[1].attrs["slash_at"] == revealed_at + 6
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.MATCHED and cl.items[0][4] == fps.responses[0]
    assert cl.decided_height == revealed_at
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


def test_m_of_k_a_claim_may_carry_items_that_miss(oml):
    """A deployment that samples may miss some keys: 2 of 3 items matching is enough."""
    c, fps = oml
    file_claim(c, draft(fps, (0, 1, 2), outputs={1: "a sampled, different answer"}))
    reveal_all(c, fps, 0)
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.MATCHED
    assert [it[3] for it in cl.items] == [ItemState.MATCHED, ItemState.MISMATCHED,
                                          ItemState.MATCHED]
    c.advance(6)
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED


def test_one_match_is_not_enough(oml):
    """One matching key below the threshold: the claim is false and the bond burned."""
    c, fps = oml
    file_claim(c, draft(fps, (0, 1), outputs={1: "A perfectly ordinary completion."}))
    before = c.balance("prover")
    burned = c.ledger.supply_breakdown().burned
    c.ok("omlizer", reveal(fps, 0, 0))
    r = c.ok("omlizer", reveal(fps, 0, 1))
    assert r.events[0].attrs["matched"] == 0
    assert r.events[1].type == "claim_false" and r.events[1].attrs["matches"] == 1
    assert c.ledger.claim(0).status == ClaimStatus.FALSE
    assert c.balance("prover") == before  # the bond is not returned
    assert c.ledger.supply_breakdown().burned == burned + 100
    assert c.ledger.host(MODEL, ADDR["host"]).open_claims == 0
    c.advance(6)
    assert c.ledger.host(MODEL, ADDR["host"]).collateral == COLLATERAL  # never slashed


def test_false_claim_is_decided_as_soon_as_the_threshold_is_out_of_reach(oml):
    c, fps = oml
    file_claim(c, draft(fps, (0, 1), outputs={0: "nothing like it"}))
    r = c.ok("omlizer", reveal(fps, 0, 0))  # 0 matched + 1 pending < 2
    assert r.events[1].type == "claim_false"
    assert c.ledger.claim(0).status == ClaimStatus.FALSE
    c.fail("omlizer", reveal(fps, 0, 1), Code.WRONG_STATE)  # nothing left to decide


def test_sibling_copy_outputs_do_not_reach_the_threshold(oml):
    """A prover holding host A's keys asks host B's honest copy of the same base.
    B's answers start with A's committed response only where the copies collide
    (here one key of three); below claim_min_matches the claim is false, A keeps
    its collateral and the prover loses its bond."""
    c, fps = oml
    sibling = {0: fps.responses[0] + " (a collision)", 1: "The hidden word is llama",
               2: "The hidden word is yak1"}
    file_claim(c, draft(fps, (0, 1, 2), outputs=sibling))
    reveal_all(c, fps, 0)
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.FALSE and cl.to_json()["matches"] == 1
    c.advance(8)
    assert c.ledger.host(MODEL, ADDR["host"]).collateral == COLLATERAL


def test_reveal_that_does_not_open_the_leaf_fails(oml):
    c, fps = oml
    file_claim(c, draft(fps))
    c.fail("omlizer", reveal(fps, 0, salt=b"\x00" * 32), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, response="something else"), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, path=fps.path(1)), Code.REVEAL_MISMATCH)
    c.fail("omlizer", reveal(fps, 0, path=fps.path(0)[:-1]), Code.REVEAL_MISMATCH)
    # another index's leaf does not open index 0
    c.fail("omlizer", RevealBody(claim_id=0, fp_index=0, salt=fps.salts[1], key=fps.keys[1],
                                 response=fps.responses[1], path=fps.path(1)),
           Code.REVEAL_MISMATCH)
    assert c.ledger.claim(0).status == ClaimStatus.OPEN
    c.ok("omlizer", reveal(fps, 0))


def test_reveal_unauthorised_unknown_unclaimed_and_twice(oml):
    c, fps = oml
    c.fail("omlizer", reveal(fps, 0), Code.NOT_FOUND)
    d = draft(fps)
    c.ok("prover", d.commit())
    c.fail("omlizer", reveal(fps, 0), Code.WRONG_STATE)  # not opened yet
    c.ok("prover", d.open(0))
    c.fail("alice", reveal(fps, 0), Code.UNAUTHORIZED)
    c.fail("host", reveal(fps, 0), Code.UNAUTHORIZED)
    c.fail("omlizer", reveal(fps, 0, 3), Code.INVALID_ARGUMENT)  # index 3 is not claimed
    c.ok("omlizer", reveal(fps, 0))
    c.fail("omlizer", reveal(fps, 0), Code.WRONG_STATE)  # index 0 already revealed


def test_unrevealed_claim_expires_refunds_and_penalises_the_omlizer(oml):
    c, fps = oml
    file_claim(c, draft(fps))
    opened = c.ledger.height
    c.ok("omlizer", reveal(fps, 0, 0))  # one of two: not enough to decide
    before = c.balance("prover")
    omlizer_bond = c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond
    c.advance(4)
    assert c.ledger.claim(0).status == ClaimStatus.OPEN
    last = c.advance(1)[0]
    assert c.ledger.height == opened + 6
    assert c.ledger.claim(0).status == ClaimStatus.EXPIRED
    # the bond back, plus as much again from the silent OMLizer's bond
    assert c.balance("prover") == before + 100 + 100
    assert c.ledger.role(Role.OMLIZER, ADDR["omlizer"]).bond == omlizer_bond - 100
    ev = last.end_block_events[0]
    assert ev.type == "claim_expired" and ev.attrs["omlizer_penalty"] == 100
    assert ev.attrs["unrevealed"] == 1
    c.fail("omlizer", reveal(fps, 0, 1), Code.WRONG_STATE)
    c.fail("prover", draft(fps, (0, 2)).open(0), Code.WRONG_STATE)
    d = draft(fps, (0, 2))
    cid = int(c.ok("prover", d.commit()).events[0].attrs["claim_id"])
    c.fail("prover", d.open(cid), Code.INDEX_BURNED)  # the key was public on chain


def test_enough_matches_when_the_window_ends_still_slash(oml):
    """The OMLizer revealing only m of k items cannot save the host."""
    c, fps = oml
    file_claim(c, draft(fps, (0, 1, 2)))
    opened = c.ledger.height
    c.ok("omlizer", reveal(fps, 0, 0))
    c.ok("omlizer", reveal(fps, 0, 1))
    assert c.ledger.claim(0).status == ClaimStatus.OPEN
    c.advance(opened + 6 - c.ledger.height)
    cl = c.ledger.claim(0)
    assert cl.status == ClaimStatus.MATCHED and cl.decided_height == opened + 6
    c.advance(6)
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED


def test_reveal_in_the_last_block_of_the_window(oml):
    c, fps = oml
    file_claim(c, draft(fps))
    c.ok("omlizer", reveal(fps, 0, 0))
    c.advance(4)
    c.ok("omlizer", reveal(fps, 0, 1))  # at opened + 6, the window's last block
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
    sig = permission(fps.keys[1], at=issued, seq=42)
    file_claim(c, draft(fps))
    reveal_all(c, fps, 0)
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED
    before = c.balance("prover")
    r = c.ok("host", rebut(0, issued, sig, seq=42, i=1))  # one permitted key is enough
    assert r.events[0].attrs["issued_height"] == issued and r.events[0].attrs["fp_index"] == 1
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    assert c.balance("prover") == before + 100
    c.advance(6)
    rec = c.ledger.host(MODEL, ADDR["host"])
    assert rec.collateral == COLLATERAL and rec.open_claims == 0


def test_rebut_before_reveal(oml):
    c, fps = oml
    c.advance(3)
    sig = permission(fps.keys[0], at=1)  # long before the claim
    file_claim(c, draft(fps))
    c.ok("host", rebut(0, 1, sig))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED
    c.advance(13)  # nothing due any more
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED


def test_permission_bought_after_the_commitment_cannot_rebut(oml):
    """The hole this closes: a cheater watching the chain sees a commitment against it
    and buys permissions before the claim is opened. It cannot know which keys, and
    even for the right key the owner dates the permission at or after the commitment's
    block, so it fails with LATE_PERMISSION and the host is still slashed."""
    c, fps = oml
    d = draft(fps)
    c.ok("prover", d.commit())
    committed = c.ledger.claim(0).committed_height
    # the cheater buys a permission for every key it can think of, right now
    bought = permission(fps.keys[0], at=committed)
    c.fail("host", rebut(0, committed, bought), Code.WRONG_STATE)  # nothing to rebut yet
    c.ok("prover", d.open(0))
    for at in (committed, committed + 1, committed + 100):
        r = c.fail("host", rebut(0, at, permission(fps.keys[0], at=at)), Code.LATE_PERMISSION)
        assert f"issued at height {at}" in r.log and f"committed at height {committed}" in r.log
    reveal_all(c, fps, 0)
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED
    c.fail("host", rebut(0, committed, bought), Code.LATE_PERMISSION)
    # the boundary: issued at committed - 1 (the last block before the commitment) counts
    c.ok("host", rebut(0, committed - 1, permission(fps.keys[0], at=committed - 1)))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED


def test_late_permission_leaves_the_host_slashable(oml):
    c, fps = oml
    file_claim(c, draft(fps))
    committed = c.ledger.claim(0).committed_height
    reveal_all(c, fps, 0)
    c.fail("host", rebut(0, committed, permission(fps.keys[0], at=committed)),
           Code.LATE_PERMISSION)
    c.advance(6)
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    assert c.ledger.host(MODEL, ADDR["host"]).collateral == COLLATERAL // 2


def test_rebut_failures(make_chain):
    c = make_chain(params={**PARAMS, "reveal_window": 20, "challenge_window": 20})
    fps = setup_oml(c, collateral=COLLATERAL)
    c.fail("host", rebut(0, 0, bytes(64)), Code.NOT_FOUND)
    at = c.ledger.height
    good = permission(fps.keys[0], at=at)
    file_claim(c, draft(fps))
    # a permission string for another query (index 1's key offered for index 0)
    c.fail("host", rebut(0, at, permission(fps.keys[1], at=at)), Code.BAD_PERMISSION)
    c.fail("host", rebut(0, at, good, i=1), Code.BAD_PERMISSION)      # right string, other item
    c.fail("host", rebut(0, at, good, i=3), Code.INVALID_ARGUMENT)    # index 3 is not claimed
    c.fail("host", rebut(0, at, good, seq=2), Code.BAD_PERMISSION)    # wrong seq
    c.fail("host", rebut(0, at, permission(fps.keys[0], at=at, signer="alice")),
           Code.BAD_PERMISSION)  # not signed by the owner
    reveal_all(c, fps, 0)
    # a height other than the signed one (even an earlier one) does not verify
    c.fail("host", rebut(0, at - 1, good), Code.BAD_PERMISSION)
    # a forged late string is BAD_PERMISSION, not LATE_PERMISSION: the signature comes first
    c.fail("host", rebut(0, at + 5, good), Code.BAD_PERMISSION)
    c.fail("alice", rebut(0, at, good), Code.UNAUTHORIZED)
    c.advance(20)  # slashed
    assert c.ledger.claim(0).status == ClaimStatus.SLASHED
    c.fail("host", rebut(0, at, good), Code.WRONG_STATE)


def test_claim_with_made_up_keys_is_shown_false(oml):
    """A prover cannot burn indices for free: the OMLizer opens each leaf with the
    committed key, which differs from the claimed one, so the item does not match."""
    c, fps = oml
    file_claim(c, draft(fps, (2, 3), keys={2: "a key I made up", 3: "another one"},
                        outputs={2: fps.responses[2], 3: fps.responses[3]}))
    burned = c.ledger.supply_breakdown().burned
    r = c.ok("omlizer", reveal(fps, 0, 2))
    assert r.events[0].attrs["matched"] == 0 and r.events[1].type == "claim_false"
    assert c.ledger.claim(0).status == ClaimStatus.FALSE
    assert c.ledger.supply_breakdown().burned == burned + 100


def test_a_commitment_binds_its_prover(make_chain):
    """Someone who copies a commitment from the mempool cannot open it (it hashes the
    prover's address), nor open another prover's claim with its items once public."""
    c = make_chain(params=PARAMS)
    fps = setup_oml(c, collateral=COLLATERAL)
    c.ok("alice", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    d = draft(fps)
    c.ok("prover", d.commit())
    c.ok("alice", CommitClaimBody(model_id=MODEL, host=ADDR["host"],
                                  commitment=d.commitment("prover"), bond=100))
    c.fail("alice", d.open(0), Code.UNAUTHORIZED)
    c.ok("prover", d.open(0))
    c.fail("alice", d.open(1), Code.BAD_OPENING)  # the copied hash is not alice's


def test_omlizer_penalty_is_capped_by_its_bond_and_blocks_new_commits(oml):
    from ledger_helpers import PACKAGE, PACKAGE_BLOB, make_fingerprints

    from node.ledger import CommitOmlizationBody, RequestAccessBody
    c, fps = oml
    file_claim(c, draft(fps, (0, 1)), bond=800)
    file_claim(c, draft(fps, (2, 3)), bond=800)
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


def test_claim_bond_scales_with_what_the_slash_would_pay(make_chain):
    """The bond is at least claim_bond_bp of prover reward + owner share (rounded up)."""
    from node.ledger import required_claim_bond, slash_split
    c = make_chain(params={**PARAMS, "claim_bond_bp": 100})
    fps = setup_oml(c, collateral=COLLATERAL)
    slash, reward, owner_share, burned = slash_split(c.ledger.params(), COLLATERAL)
    assert (slash, reward, owner_share, burned) == (50_000, 30_000, 15_000, 5_000)
    need = required_claim_bond(c.ledger.params(), c.ledger.host(MODEL, ADDR["host"]))
    assert need == 450
    r = c.fail("prover", draft(fps).commit(bond=449), Code.BELOW_MINIMUM)
    assert "minimum 450" in r.log
    c.ok("prover", draft(fps).commit(bond=450))


def test_an_owner_with_a_sock_puppet_prover_does_not_profit_from_guessing(make_chain):
    """The owner holds no responses (docs/threat-model.md), so a sock-puppet claim
    against an honest host is a guess. Even if one guess in twelve matched -- a rate
    some 10^8 times above the bound claim_min_matches is chosen for -- the bonds the
    coalition burns exceed what the owner and its prover collect from the one slash."""
    c = make_chain(params={**PARAMS, "claim_bond_bp": 1_000})
    fps = setup_oml(c, collateral=COLLATERAL, n_fp=24)
    c.ok("alice", RegisterRoleBody(role=Role.PROVER, bond=1_000))   # the owner's sock puppet
    coalition = lambda: c.balance("owner") + c.balance("alice")    # noqa: E731
    before = coalition()
    bond = required_claim_bond_now(c)
    assert bond == 4_500  # 10 % of 30,000 + 15,000
    guesses = {i: "The hidden word is a guess" for i in range(24)}
    for n in range(11):  # eleven wrong guesses, each claim burned once revealed
        cid = file_claim(c, draft(fps, (2 * n, 2 * n + 1), outputs=guesses), bond=bond,
                         prover="alice")
        reveal_all(c, fps, cid)
        assert c.ledger.claim(cid).status == ClaimStatus.FALSE
    cid = file_claim(c, draft(fps, (22, 23)), bond=bond, prover="alice")  # one lucky hit
    reveal_all(c, fps, cid)
    c.advance(6)
    assert c.ledger.claim(cid).status == ClaimStatus.SLASHED
    gained = coalition() - before
    assert gained == 30_000 + 15_000 - 11 * 4_500 < 0


def required_claim_bond_now(c) -> int:
    from node.ledger import required_claim_bond
    return required_claim_bond(c.ledger.params(), c.ledger.host(MODEL, ADDR["host"]))


def test_a_key_with_backup_leaves_counts_once(make_chain):
    """With backup responses one key has several committed leaves (each its own
    response). Matches count per distinct key: naming the key twice cannot make up
    the threshold, even when the output starts with both responses."""
    from ledger_helpers import PACKAGE, PACKAGE_BLOB, Fingerprints, make_fingerprints

    from node.ledger import CommitOmlizationBody, RequestAccessBody
    c = make_chain(params=PARAMS)
    setup_oml(c, collateral=COLLATERAL)
    base = make_fingerprints(MODEL, ADDR["bob"], 8)
    k = base.keys
    keys = [k[0], k[0], k[1], k[2], k[3], k[3], k[4], k[5]]
    responses = ["The hidden", "The hidden word", "zebra1", "zebra2", "yak3", "zebra3",
                 "zebra4", "zebra5"]
    fps = Fingerprints(MODEL, ADDR["bob"], keys, responses, base.salts)
    c.ok("bob", RequestAccessBody(model_id=MODEL, collateral=COLLATERAL))
    c.ok("omlizer", CommitOmlizationBody(model_id=MODEL, host=ADDR["bob"], package_hash=PACKAGE,
                                         fp_root=fps.root, fp_count=8,
                                         package_blob=PACKAGE_BLOB))
    one_key = draft(fps, (0, 1), outputs={0: "The hidden word is x", 1: "The hidden word is x"})
    cid = int(c.ok("prover", one_key.commit()).events[0].attrs["claim_id"])
    r = c.fail("prover", one_key.open(cid), Code.INVALID_ARGUMENT)
    assert "distinct keys, got 1" in r.log
    # key 0 matches at both leaves, key 1 at neither: one key, not enough
    d = draft(fps, (0, 1, 2), outputs={0: "The hidden word is x", 1: "The hidden word is x",
                                       2: "nothing"})
    cid = file_claim(c, d)
    reveal_all(c, fps, cid)
    cl = c.ledger.claim(cid)
    assert [it[3] for it in cl.items] == [ItemState.MATCHED, ItemState.MATCHED,
                                          ItemState.MISMATCHED]
    assert cl.status == ClaimStatus.FALSE and cl.to_json()["matches"] == 1
    # a prover that does not know which leaf of a key the deployment answers may name
    # both: key 3's primary misses, its backup matches, key 4 matches -> 2 keys
    d = draft(fps, (4, 5, 6), outputs={4: "zebra3 ...", 5: "zebra3 ...", 6: "zebra4"})
    cid = file_claim(c, d)
    reveal_all(c, fps, cid)
    assert c.ledger.claim(cid).status == ClaimStatus.MATCHED
