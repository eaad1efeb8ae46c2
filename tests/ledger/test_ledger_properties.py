"""Property tests: random blocks of valid and invalid transactions of every kind.

After every block, on two independent LMDB stores fed the same blocks:
the supply invariant holds, no balance is negative, every account that
has sent a transaction (nonce > 0) holds the public key its address derives
from (and no other account holds one), every host's open-claim counter
matches its open claims, and both stores have the same app hash and
state. Once the windows have passed every claim is decided, and a reopened
store has the same state and app hash.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import (
    ADDR,
    CHAIN,
    KEYS,
    PACKAGE,
    PACKAGE_BLOB,
    WEIGHTS,
    WEIGHTS_BLOB,
    ClaimDraft,
    make_fingerprints,
    make_genesis,
)

from consensus.crypto import address_of
from node.ledger import (
    Account,
    BeginWithdrawalBody,
    Claim,
    ClaimStatus,
    CommitClaimBody,
    CommitOmlizationBody,
    CompleteWithdrawalBody,
    FundChannelBody,
    HostRecord,
    HostStatus,
    Ledger,
    RebutBody,
    RedeemBody,
    RegisterModelBody,
    RegisterRoleBody,
    RequestAccessBody,
    RevealBody,
    RoleRecord,
    TransferBody,
    UnregisterRoleBody,
    build_tx,
    sign_permission,
    sign_voucher,
)
from node.ledger.state import ACCOUNTS, CLAIMS, HOSTS, ROLES

PARAMS = {"reveal_window": 3, "challenge_window": 2, "unbonding_delay": 1,
          "min_omlizer_bond": 500, "min_prover_bond": 500, "min_claim_bond": 10,
          "protocol_fee_bp": 300, "slash_fraction_bp": 3_000, "claim_min_matches": 2,
          "claim_open_window": 3, "claim_bond_bp": 50}
MODELS = [b"m0", b"m1"]
HOSTS_ = ["host", "bob"]
ACTORS = ["owner", "host", "bob", "omlizer", "prover", "alice", "poor"]
FPS = {(m, h): make_fingerprints(m, ADDR[h], 4) for m in MODELS for h in HOSTS_}
# Kind numbers as used in body_for, repeated to weight the claim lifecycle up.
KIND_WEIGHTS = [0, 0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 8, 9, 9, 10, 11, 12, 13,
                14, 15, 15, 15, 15]
#: Every claim draft ever committed, by commitment, so an open can find its items.
DRAFTS: dict[bytes, ClaimDraft] = {}


def remember(d: ClaimDraft, prover: str) -> bytes:
    commitment = d.commitment(prover)
    DRAFTS[commitment] = d
    return commitment
AMOUNTS = st.sampled_from([0, 1, 7, 100, 999, 5_000, 60_000, 10**6, 2**64 - 1])


def body_for(draw, ledger: Ledger):
    """Draw one transaction body and its sender, aimed at states that exist."""
    kind = draw(st.sampled_from(KIND_WEIGHTS))
    actor = draw(st.sampled_from(ACTORS))
    model = draw(st.sampled_from(MODELS))
    host = draw(st.sampled_from(HOSTS_))
    if kind == 0:
        return actor, TransferBody(to=ADDR[draw(st.sampled_from(ACTORS))], amount=draw(AMOUNTS))
    if kind == 1:
        splits = draw(st.lists(st.tuples(st.sampled_from(["contrib1", "contrib2", "alice"]),
                                         st.sampled_from([0, 100, 2_500, 9_000])), max_size=2))
        return draw(st.sampled_from(["owner", "owner", "alice"])), RegisterModelBody(
            model_id=model, weights_hash=WEIGHTS, min_collateral=draw(st.sampled_from([0, 1_000])),
            omlizers=(ADDR["omlizer"],), splits=tuple((ADDR[a], bp) for a, bp in splits),
            parent=draw(st.sampled_from([b"", b"m0", b"zz"])),
            royalty_bp=draw(st.sampled_from([0, 500, 10_000])),
            blob_id=draw(st.sampled_from([b"", WEIGHTS_BLOB])))
    if kind == 2:
        return draw(st.sampled_from(["omlizer", "prover", "alice"])), RegisterRoleBody(
            role=draw(st.sampled_from([1, 2])), bond=draw(st.sampled_from([10, 500, 2_000])))
    if kind == 3:
        return host, RequestAccessBody(model_id=model, collateral=draw(
            st.sampled_from([0, 1_000, 50_000, 2_000_000])))
    if kind == 4:
        fps = FPS[(model, host)]
        return draw(st.sampled_from(["omlizer", "omlizer", "alice"])), CommitOmlizationBody(
            model_id=model, host=ADDR[host], package_hash=PACKAGE, fp_root=fps.root, fp_count=4,
            package_blob=PACKAGE_BLOB)
    if kind == 5:
        return host, FundChannelBody(model_id=model, amount=draw(AMOUNTS))
    if kind == 6:
        count, amount = draw(st.integers(0, 50)), draw(st.sampled_from([0, 10, 500, 20_000]))
        signer = draw(st.sampled_from([host, host, "alice"]))
        sig = sign_voucher(KEYS[signer], CHAIN, model, count, amount)
        owner = "owner" if model == b"m0" else "alice"
        return draw(st.sampled_from([owner, owner, "bob"])), RedeemBody(
            model_id=model, host=ADDR[host], cumulative_count=count, cumulative_amount=amount,
            signature=sig)
    if kind == 7:
        fps = FPS[(model, host)]
        indices = draw(st.sampled_from([(0, 1), (2, 3), (1, 2, 3), (0,), (3, 3), (0, 4)]))
        good = draw(st.sampled_from([True, True, True, False]))
        items = tuple((i, fps.keys[i % 4], fps.responses[i % 4] + " ok" if good and i < 4
                       else "nothing to see") for i in indices)
        salt = draw(st.sampled_from([b"\x01" * 32, b"\x02" * 32]))
        prover = draw(st.sampled_from(["prover"] * 4 + ["alice"]))
        commitment = remember(ClaimDraft(model, ADDR[host], items, salt), prover)
        return prover, CommitClaimBody(model_id=model, host=ADDR[host], commitment=commitment,
                                       bond=draw(st.sampled_from([5, 10, 300, 2_000])))
    claims = [c for c in (ledger.claim(i) for i in range(64)) if c is not None]
    if kind == 15:
        waiting = [c.claim_id for c in claims if c.status == ClaimStatus.COMMITTED]
        claim_id = draw(st.sampled_from(waiting * 4 + [len(claims)]
                                        + [c.claim_id for c in claims]))
        claim = ledger.claim(claim_id)
        d = DRAFTS.get(claim.commitment) if claim is not None else None
        if d is None or draw(st.sampled_from([False] * 5 + [True])):
            d = ClaimDraft(model, ADDR[host], ((0, "k", "o"), (1, "k", "o")))
        prover = "prover" if claim is None or claim.prover == ADDR["prover"] else "alice"
        return draw(st.sampled_from([prover] * 5 + ["bob"])), d.open(claim_id)
    if kind in (8, 9):
        opened = [c.claim_id for c in claims if c.status in (ClaimStatus.OPEN,
                                                             ClaimStatus.MATCHED)]
        # mostly claims that are still open; sometimes a decided or unknown one
        claim_id = draw(st.sampled_from(opened * 4 + [len(claims)]
                                        + [c.claim_id for c in claims]))
        claim = ledger.claim(claim_id)
        if claim is None or not claim.items:
            return actor, RevealBody(claim_id=claim_id, fp_index=0, salt=b"", key="",
                                     response="", path=())
        host_name = next(h for h in HOSTS_ if ADDR[h] == claim.host)
        fps = FPS[(claim.model_id, host_name)]
        i = draw(st.sampled_from(list(claim.indices) * 3 + [2]))
        if kind == 8:
            honest = i < 4 and draw(st.sampled_from([True, True, True, False]))
            j = i if i < 4 else 0
            return draw(st.sampled_from(["omlizer"] * 4 + ["alice"])), RevealBody(
                claim_id=claim_id, fp_index=i, salt=fps.salts[j] if honest else bytes(32),
                key=fps.keys[j], response=fps.responses[j], path=fps.path(j))
        item = claim.item(i)
        query = item[1] if item is not None and draw(
            st.sampled_from([True, True, True, False])) else "other query"
        # mostly issued before the commitment's block; sometimes at it or after (too late)
        issued = max(0, claim.committed_height + draw(st.sampled_from([-1, -1, -1, -3, 0, 2])))
        sig = sign_permission(KEYS["owner"], CHAIN, claim.model_id, claim.host, 1, query,
                              issued_height=issued)
        return draw(st.sampled_from([host_name] * 3 + ["alice"])), RebutBody(
            claim_id=claim_id, fp_index=i, seq=1, issued_height=issued, signature=sig)
    if kind == 10:
        return host, BeginWithdrawalBody(model_id=model)
    if kind == 14:
        return draw(st.sampled_from(["omlizer", "prover", "alice"])), UnregisterRoleBody(
            role=draw(st.sampled_from([1, 2])))
    if kind == 11:
        return host, CompleteWithdrawalBody(model_id=model)
    return actor, None  # 12, 13: raw garbage / tampered bytes, built by the caller


def setup_block() -> list[bytes]:
    """A valid first block that reaches the interesting states: two models (one
    derived), registered roles, two active hosts with funded channels, two
    open claims."""
    nonces: dict[str, int] = {}

    def tx(sender, body):
        nonces[sender] = nonces.get(sender, -1) + 1
        return build_tx(KEYS[sender], CHAIN, nonces[sender], body)

    txs = [tx("owner", RegisterModelBody(model_id=b"m0", weights_hash=WEIGHTS,
                                         omlizers=(ADDR["omlizer"],), royalty_bp=500,
                                         splits=((ADDR["contrib1"], 1_000),))),
           tx("alice", RegisterModelBody(model_id=b"m1", weights_hash=WEIGHTS, parent=b"m0",
                                         omlizers=(ADDR["omlizer"],))),
           tx("omlizer", RegisterRoleBody(role=1, bond=500)),
           tx("prover", RegisterRoleBody(role=2, bond=500)),
           tx("host", RequestAccessBody(model_id=b"m0", collateral=50_000)),
           tx("bob", RequestAccessBody(model_id=b"m1", collateral=50_000))]
    for model, host in ((b"m0", "host"), (b"m1", "bob")):
        txs.append(tx("omlizer", CommitOmlizationBody(
            model_id=model, host=ADDR[host], package_hash=PACKAGE,
            fp_root=FPS[(model, host)].root, fp_count=4, package_blob=PACKAGE_BLOB)))
        txs.append(tx(host, FundChannelBody(model_id=model, amount=10_000)))
    # two committed claims from the start (opened in block 2), so reveals and
    # rebuttals have targets
    for model, host, output in ((b"m0", "host", None), (b"m1", "bob", "no match")):
        fps = FPS[(model, host)]
        items = tuple((i, fps.keys[i], fps.responses[i] if output is None else output)
                      for i in (2, 3))
        commitment = remember(ClaimDraft(model, ADDR[host], items), "prover")
        txs.append(tx("prover", CommitClaimBody(model_id=model, host=ADDR[host],
                                                commitment=commitment, bond=500)))
    return txs


def open_block(ledger: Ledger) -> list[bytes]:
    """Block 2: the prover opens the two claims committed in block 1."""
    nonce = ledger.account(ADDR["prover"]).nonce
    return [build_tx(KEYS["prover"], CHAIN, nonce + i,
                     DRAFTS[ledger.claim(i).commitment].open(i)) for i in range(2)]


def reveal_block(ledger: Ledger) -> list[bytes]:
    """Sometimes block 3: the OMLizer reveals both items of claim 0 (a true claim)."""
    fps, nonce = FPS[(b"m0", "host")], ledger.account(ADDR["omlizer"]).nonce
    return [build_tx(KEYS["omlizer"], CHAIN, nonce + k, RevealBody(
        claim_id=0, fp_index=i, salt=fps.salts[i], key=fps.keys[i], response=fps.responses[i],
        path=fps.path(i))) for k, i in enumerate((2, 3))]


def draw_block(draw, ledger: Ledger) -> list[bytes]:
    txs: list[bytes] = []
    pending: dict[str, int] = {}
    for _ in range(draw(st.integers(0, 8))):
        sender, body = body_for(draw, ledger)
        acct = ledger.account(ADDR[sender])
        nonce = (acct.nonce if acct else 0) + pending.get(sender, 0)
        nonce += draw(st.sampled_from([0] * 10 + [1, -1]))
        if body is None:
            garbage = draw(st.binary(max_size=40))
            real = build_tx(KEYS[sender], CHAIN, max(nonce, 0),
                            TransferBody(to=ADDR["alice"], amount=1))
            flip = draw(st.integers(0, len(real) - 1))
            txs.append(draw(st.sampled_from([garbage, real[:flip] + bytes([real[flip] ^ 0x40])
                                             + real[flip + 1:]])))
            continue
        txs.append(build_tx(KEYS[sender], CHAIN, max(nonce, 0), body))
        pending[sender] = pending.get(sender, 0) + 1
    return txs


def check_invariants(ledger: Ledger) -> None:
    supply = ledger.supply_breakdown()
    assert supply.balanced, supply
    state = ledger.export_state()
    for address, raw in state[ACCOUNTS.decode()].items():
        acct = Account.decode(raw)
        assert acct.balance >= 0
        if acct.nonce > 0:
            assert address_of(acct.pub_key) == address, address.hex()
        else:
            assert acct.pub_key == b"", address.hex()
    open_by_host: dict[tuple[bytes, bytes], int] = {}
    for raw in state[CLAIMS.decode()].values():
        c = Claim.decode(raw)
        if ClaimStatus(c.status).open:
            open_by_host[(c.model_id, c.host)] = open_by_host.get((c.model_id, c.host), 0) + 1
    committed: dict[bytes, int] = {}
    for raw in state[HOSTS.decode()].values():
        h = HostRecord.decode(raw)
        assert h.open_claims == open_by_host.get((h.model_id, h.host), 0)
        assert bool(h.package_blob) == bool(h.omlizer)  # every commitment names its package
        if h.omlizer and h.status != HostStatus.WITHDRAWN:
            committed[h.omlizer] = committed.get(h.omlizer, 0) + 1
    for raw in state[ROLES.decode()].values():
        r = RoleRecord.decode(raw)
        assert r.committed_hosts == (committed.get(r.address, 0) if r.role == 1 else 0)


@pytest.mark.slow  # ~2 s of CPU; several seconds of wall time on a loaded machine
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), n_blocks=st.integers(1, 10), reveal_first=st.booleans())
def test_random_blocks_keep_invariants_and_agree(data, n_blocks, reveal_first):
    root = Path(tempfile.mkdtemp(prefix="ledger-prop-"))
    genesis = make_genesis(params=PARAMS)
    a = Ledger.open(root / "a", genesis, verify_threads=1, durable=False)
    b = Ledger.open(root / "b", genesis, verify_threads=2, durable=False)
    try:
        assert a.app_hash == b.app_hash
        settle = (PARAMS["claim_open_window"] + PARAMS["reveal_window"]
                  + PARAMS["challenge_window"])
        last = n_blocks + 2 + settle
        for h in range(1, last + 1):
            # setup, random blocks, then empty blocks until every claim is decided
            txs = (setup_block() if h == 1 else open_block(a) if h == 2 else
                   reveal_block(a) if h == 3 and reveal_first else
                   draw_block(data.draw, a) if h <= n_blocks + 2 else [])
            ra = a.apply_block(h, 1_000 * h + 1_000, ADDR["proposer"], txs)
            rb = b.apply_block(h, 1_000 * h + 1_000, ADDR["proposer"], txs)
            assert ra.app_hash == rb.app_hash
            assert [r.code for r in ra.tx_results] == [r.code for r in rb.tx_results]
            check_invariants(a)
            if h == 2:
                assert all(r.ok for r in ra.tx_results), [r.log for r in ra.tx_results]
        claims = [Claim.decode(v) for v in a.export_state()[CLAIMS.decode()].values()]
        assert not any(ClaimStatus(c.status).open for c in claims)
        state, app_hash = a.export_state(), a.app_hash
        assert b.export_state() == state
        a.close()
        with Ledger.open(root / "a", genesis) as again:
            assert again.app_hash == app_hash and again.export_state() == state
            assert again.height == last
    finally:
        a.close()
        b.close()
        shutil.rmtree(root, ignore_errors=True)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_random_bytes_never_crash_a_block(blobs):
    root = Path(tempfile.mkdtemp(prefix="ledger-junk-"))
    try:
        with Ledger.open(root, make_genesis(), durable=False) as ledger:
            before = ledger.export_state()["accounts"]
            result = ledger.apply_block(1, 5_000, ADDR["proposer"], blobs)
            assert all(r.code.rejected for r in result.tx_results)
            assert ledger.export_state()["accounts"] == before
    finally:
        shutil.rmtree(root, ignore_errors=True)
