"""The full OML story on the ledger alone, with every payment checked to the unit.

Owner registers a derived model (with contributor splits and a parent), a host
requests access, the authorised OMLizer commits the host's fingerprints, the
host funds its channel, the owner redeems a voucher, an honest host rebuts a
claim, a cheating host is slashed after the window and the prover is paid, and
a false claim loses its bond. The supply invariant is checked after every block
(by the Chain helper).
"""

from __future__ import annotations

from ledger_helpers import (
    ADDR,
    CHAIN,
    KEYS,
    PACKAGE,
    PACKAGE_BLOB,
    START_BALANCE,
    WEIGHTS,
    draft,
    file_claim,
    make_fingerprints,
)

from node.ledger import (
    ClaimStatus,
    CommitOmlizationBody,
    FundChannelBody,
    HostStatus,
    RebutBody,
    RedeemBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    RevealBody,
    Role,
    sign_permission,
    sign_voucher,
)

PARAMS = {"protocol_fee_bp": 200, "slash_fraction_bp": 4_000, "prover_reward_bp": 5_000,
          "owner_slash_share_bp": 2_500, "challenge_window": 2, "reveal_window": 3,
          "min_claim_bond": 50, "claim_min_matches": 2, "claim_bond_bp": 0}


def test_full_oml_story(make_chain):
    c = make_chain(params=PARAMS)
    start = {n: c.balance(n) for n in ADDR}

    # 1. The parent model's owner publishes an original model with a 10 % royalty.
    c.ok("parent_owner", RegisterModelBody(model_id=b"base", weights_hash=WEIGHTS,
                                           royalty_bp=1_000))
    # 2. The owner registers a fine-tune of it, authorises one OMLizer, pays two contributors.
    c.ok("owner", RegisterModelBody(
        model_id=b"chat", weights_hash=WEIGHTS, metadata=b'{"name":"chat-7b"}',
        price_per_query=20, min_collateral=50_000, omlizers=(ADDR["omlizer"],),
        splits=((ADDR["contrib1"], 1_000), (ADDR["contrib2"], 500)), parent=b"base"))
    # 3. Roles register with bonds.
    c.ok("omlizer", RegisterRoleBody(role=Role.OMLIZER, bond=2_000))
    c.ok("prover", RegisterRoleBody(role=Role.PROVER, bond=1_000))
    # 4. Two hosts request access with collateral: an honest one (host) and a cheater (bob).
    c.ok("host", RequestAccessBody(model_id=b"chat", collateral=60_000, endpoint="http://h"))
    c.ok("bob", RequestAccessBody(model_id=b"chat", collateral=80_000, endpoint="http://b"))
    # 5. The OMLizer fingerprints each host's copy and commits.
    fp_host = make_fingerprints(b"chat", ADDR["host"], 8)
    fp_bob = make_fingerprints(b"chat", ADDR["bob"], 8)
    for name, fps in (("host", fp_host), ("bob", fp_bob)):
        c.ok("omlizer", CommitOmlizationBody(model_id=b"chat", host=ADDR[name],
                                             package_hash=PACKAGE, fp_root=fps.root,
                                             fp_count=8, package_blob=PACKAGE_BLOB))
        assert c.ledger.host(b"chat", ADDR[name]).status == HostStatus.ACTIVE
    # 6. The honest host funds its fee channel and pays by voucher.
    c.ok("host", FundChannelBody(model_id=b"chat", amount=10_000))
    sig = sign_voucher(KEYS["host"], CHAIN, b"chat", 250, 5_000)
    before = {n: c.balance(n) for n in ("owner", "contrib1", "contrib2", "parent_owner",
                                        "proposer")}
    c.ok("owner", RedeemBody(model_id=b"chat", host=ADDR["host"], cumulative_count=250,
                             cumulative_amount=5_000, signature=sig))
    fee = 5_000 * 200 // 10_000                       # 100 to the proposer
    net = 5_000 - fee                                 # 4900
    c1, c2 = net * 1_000 // 10_000, net * 500 // 10_000  # 490, 245
    royalty = (net - c1 - c2) * 1_000 // 10_000       # 416
    owner_gets = net - c1 - c2 - royalty              # 3749
    assert {n: c.balance(n) - before[n] for n in before} == {
        "proposer": fee, "contrib1": c1, "contrib2": c2, "parent_owner": royalty,
        "owner": owner_gets}
    assert (fee, c1, c2, royalty, owner_gets) == (100, 490, 245, 416, 3_749)
    assert c.ledger.host(b"chat", ADDR["host"]).escrow == 5_000

    # 7. The prover queries the honest host with keys 0 and 1; it had the owner's
    #    permissions, issued (dated with the owner's current height) before the prover
    #    committed to its claim.
    issued = c.ledger.height
    perm = sign_permission(KEYS["owner"], CHAIN, b"chat", ADDR["host"], 17, fp_host.keys[0],
                           issued_height=issued)
    assert file_claim(c, draft(fp_host, (0, 1)), bond=50) == 0
    for i in (0, 1):
        c.ok("omlizer", RevealBody(claim_id=0, fp_index=i, salt=fp_host.salts[i],
                                   key=fp_host.keys[i], response=fp_host.responses[i],
                                   path=fp_host.path(i)))
    assert c.ledger.claim(0).status == ClaimStatus.MATCHED
    assert c.ledger.claim(0).committed_height == issued + 1
    c.ok("host", RebutBody(claim_id=0, fp_index=0, seq=17, issued_height=issued,
                           signature=perm))
    assert c.ledger.claim(0).status == ClaimStatus.DISMISSED

    # 8. The cheating host serves keys 3 and 4 without permission: slashed after the window.
    assert file_claim(c, draft(fp_bob, (3, 4), outputs={3: fp_bob.responses[3] + "!",
                                                        4: fp_bob.responses[4]}), bond=50) == 1
    for i in (3, 4):
        c.ok("omlizer", RevealBody(claim_id=1, fp_index=i, salt=fp_bob.salts[i],
                                   key=fp_bob.keys[i], response=fp_bob.responses[i],
                                   path=fp_bob.path(i)))
    prover_before, owner_before = c.balance("prover"), c.balance("owner")
    c.advance(2)
    assert c.ledger.claim(1).status == ClaimStatus.SLASHED
    slash = 80_000 * 4_000 // 10_000                  # 32000
    reward, owner_share = slash * 5_000 // 10_000, slash * 2_500 // 10_000
    assert c.balance("prover") - prover_before == reward + 50
    assert c.balance("owner") - owner_before == owner_share
    assert c.ledger.host(b"chat", ADDR["bob"]).collateral == 80_000 - slash

    # 9. A false claim (outputs are not the fingerprint responses) loses its bond.
    assert file_claim(c, draft(fp_host, (5, 6), outputs={5: "I don't know.", 6: "No."}),
                      bond=50) == 2
    c.ok("omlizer", RevealBody(claim_id=2, fp_index=5, salt=fp_host.salts[5],
                               key=fp_host.keys[5], response=fp_host.responses[5],
                               path=fp_host.path(5)))
    assert c.ledger.claim(2).status == ClaimStatus.FALSE
    c.advance(4)
    assert c.ledger.host(b"chat", ADDR["host"]).collateral == 60_000

    # Accounting: everything burned is the slash remainder plus the false claim's bond.
    supply = c.ledger.supply_breakdown()
    assert supply.burned == (slash - reward - owner_share) + 50
    assert supply.balanced and supply.total == sum(start.values())
    assert supply.collateral == 60_000 + 80_000 - slash
    assert supply.role_bonds == 3_000 and supply.claim_bonds == 0
    assert c.balance("prover") == START_BALANCE - 1_000 + reward - 50
