"""Store, genesis and facade behaviour: reopen, app hash determinism, misuse errors."""

from __future__ import annotations

import hashlib

import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, START_BALANCE, WEIGHTS, Chain, make_genesis, setup_oml

from consensus.encoding import U64_MAX
from node.genesis import Genesis
from node.ledger import (
    Code,
    GenesisStateError,
    Ledger,
    LedgerUsageError,
    Params,
    RegisterModelBody,
    TransferBody,
    next_app_hash,
    parse_app_state,
)
from node.ledger.apphash import GENESIS_PREV, write_set_hash


def test_genesis_state_and_hash(tmp_path):
    g = make_genesis()
    with Ledger.open(tmp_path / "a", g) as ledger:
        assert ledger.height == 0 and ledger.chain_id == CHAIN
        assert ledger.last_block_time_ms == g.genesis_time_ms
        assert ledger.account(ADDR["alice"]).balance == START_BALANCE
        assert ledger.account(ADDR["proposer"]) is None
        assert ledger.params() == Params()
        supply = ledger.supply_breakdown()
        assert supply.balanced and supply.genesis_supply == supply.balances
        first = ledger.app_hash
    with Ledger.open(tmp_path / "b", g) as other:
        assert other.app_hash == first
    with Ledger.open(tmp_path / "c", make_genesis(balances={"alice": 5})) as other:
        assert other.app_hash != first


def test_app_hash_is_the_documented_chain():
    writes = {(b"accounts", b"k"): b"v", (b"meta", b"x"): None}
    h = hashlib.sha256()
    for table, key, value in [(b"accounts", b"k", b"v"), (b"meta", b"x", None)]:
        from consensus.encoding import encode
        h.update(encode([table, key, 0, b""] if value is None else [table, key, 1, value]))
    assert write_set_hash(writes) == h.digest()
    expect = hashlib.sha256(b"oml/apphash/v1\x00" + GENESIS_PREV + (3).to_bytes(8, "big")
                            + h.digest()).digest()
    assert next_app_hash(GENESIS_PREV, 3, writes) == expect
    # insertion order does not matter
    assert write_set_hash(dict(reversed(list(writes.items())))) == write_set_hash(writes)


def run_script(chain: Chain) -> list[bytes]:
    hashes = []
    setup_oml(chain)
    hashes.append(chain.ledger.app_hash)
    chain.ok("alice", TransferBody(to=ADDR["bob"], amount=3))
    chain.fail("alice", TransferBody(to=ADDR["bob"], amount=START_BALANCE * 2),
               Code.INSUFFICIENT_FUNDS)
    hashes.append(chain.ledger.app_hash)
    return hashes


def test_two_stores_same_blocks_same_hash_and_reopen(tmp_path, make_chain):
    a, b = make_chain(name="a"), make_chain(name="b")
    assert run_script(a) == run_script(b)
    state, app_hash, height = a.ledger.export_state(), a.ledger.app_hash, a.ledger.height
    assert b.ledger.export_state() == state
    a.ledger.close()
    with Ledger.open(tmp_path / "a", make_genesis()) as again:
        assert (again.app_hash, again.height) == (app_hash, height)
        assert again.export_state() == state
        assert again.last_block_time_ms == 1_000 + height * 1_000
        # and it keeps going from there
        r = again.apply_block(height + 1, 10**9, ADDR["proposer"], [])
        assert r.app_hash != app_hash


def test_app_hash_changes_with_every_block_even_empty(chain):
    seen = {chain.ledger.app_hash}
    for _ in range(3):
        seen.add(chain.block().app_hash)
    assert len(seen) == 4


def test_apply_block_misuse(chain):
    p = ADDR["proposer"]
    with pytest.raises(LedgerUsageError):
        chain.ledger.apply_block(2, 5_000, p, [])  # skips a height
    with pytest.raises(LedgerUsageError):
        chain.ledger.apply_block(0, 5_000, p, [])
    with pytest.raises(LedgerUsageError):
        chain.ledger.apply_block(1, 999, p, [])  # before genesis time
    with pytest.raises(LedgerUsageError):
        chain.ledger.apply_block(1, 5_000, b"\x01" * 32, [])  # a pubkey, not an address
    assert chain.ledger.height == 0
    chain.ledger.close()
    with pytest.raises(LedgerUsageError):
        chain.ledger.apply_block(1, 5_000, p, [])
    with pytest.raises(LedgerUsageError):
        chain.ledger.account(ADDR["alice"])


def test_open_with_another_genesis_is_refused(tmp_path):
    with Ledger.open(tmp_path / "x", make_genesis()):
        pass
    with pytest.raises(LedgerUsageError, match="holds chain"):
        Ledger.open(tmp_path / "x", make_genesis(chain_id="another"))
    with pytest.raises(LedgerUsageError, match="another genesis"):
        Ledger.open(tmp_path / "x", make_genesis(params={"challenge_window": 99}))


def test_failed_block_leaves_state_untouched(chain, monkeypatch):
    """An exception inside apply_block aborts the LMDB transaction: nothing is written."""
    import node.ledger.ledger as ledger_mod
    before, app_hash = chain.ledger.export_state(), chain.ledger.app_hash
    tx = chain.tx("alice", TransferBody(to=ADDR["bob"], amount=5))

    def boom(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ledger_mod, "settle_due", boom)
    with pytest.raises(RuntimeError):
        chain.ledger.apply_block(1, 5_000, ADDR["proposer"], [tx])
    assert chain.ledger.export_state() == before
    assert (chain.ledger.height, chain.ledger.app_hash) == (0, app_hash)
    monkeypatch.undo()
    assert chain.ledger.apply_block(1, 5_000, ADDR["proposer"], [tx]).tx_results[0].ok


@pytest.mark.parametrize("app_state, match", [
    ([], "object"),
    ({"accounts": [], "extra": 1}, "unknown app_state"),
    ({"accounts": {}}, "list"),
    ({"accounts": [{"address": "zz", "balance": 1}]}, "hex"),
    ({"accounts": [{"address": "00" * 19, "balance": 1}]}, "20 bytes"),
    ({"accounts": [{"address": "00" * 20, "balance": -1}]}, "u64"),
    ({"accounts": [{"address": "00" * 20, "balance": 1.5}]}, "u64"),
    ({"accounts": [{"address": "00" * 20, "balance": 1, "x": 2}]}, "address, balance"),
    ({"accounts": [{"address": "00" * 20, "balance": 1}] * 2}, "twice"),
    ({"accounts": [{"address": "00" * 20, "balance": U64_MAX},
                   {"address": "01" * 20, "balance": 1}]}, "exceeds"),
    ({"params": {"challenge_windw": 3}}, "unknown params"),
    ({"params": {"slash_fraction_bp": 10_001}}, "outside"),
    ({"params": {"challenge_window": 0}}, "outside"),
    ({"params": {"reveal_window": True}}, "integer"),
    ({"params": {"prover_reward_bp": 6_000, "owner_slash_share_bp": 5_000}}, "exceed"),
    # at least 10 % of every slash is burned (docs/threat-model.md)
    ({"params": {"prover_reward_bp": 6_000, "owner_slash_share_bp": 3_001}}, "burned"),
    ({"params": {"claim_min_matches": 0}}, "outside"),
    ({"params": {"claim_min_matches": 65}}, "outside"),
    ({"params": {"claim_open_window": 0}}, "outside"),
    ({"params": {"claim_bond_bp": 10_001}}, "outside"),
    ({"params": []}, "object"),
])
def test_bad_app_state_is_rejected(tmp_path, app_state, match):
    with pytest.raises(GenesisStateError, match=match):
        parse_app_state(app_state)
    g = make_genesis()
    bad = Genesis(chain_id=g.chain_id, genesis_time_ms=0, validators=g.validators,
                  app_state=app_state if isinstance(app_state, dict) else {"accounts": 5})
    with pytest.raises(GenesisStateError):
        Ledger.open(tmp_path / "bad", bad)


def test_params_defaults_docs_and_round_trip():
    p = Params.from_json({"challenge_window": 7})
    assert p.challenge_window == 7 and p.reveal_window == Params().reveal_window
    assert Params.decode(p.encode()) == p
    assert set(Params.docs()) == set(p.to_json())
    assert all(Params.docs().values())


def test_home_init_genesis_opens(tmp_path):
    """The genesis that `oml-node init` writes is a valid ledger genesis."""
    from node.home import init_home
    home = init_home(tmp_path / "home", chain_id="init-chain", genesis_time_ms=0)
    config = home.config()
    genesis = Genesis.load(home.genesis_file(config))
    address = home.account_key(config).address
    with Ledger.open(tmp_path / "l", genesis) as ledger:
        acct = ledger.account(address)
        assert acct is not None and acct.balance > 0
        assert ledger.apply_block(1, 1, address, []).height == 1


def test_records_and_results_to_json(chain):
    chain.ok("owner", RegisterModelBody(model_id=b"m", weights_hash=WEIGHTS))
    r = chain.block([chain.tx("alice", TransferBody(to=ADDR["bob"], amount=1))])
    j = r.to_json()
    assert j["height"] == chain.ledger.height and len(j["app_hash"]) == 64
    assert j["tx_results"][0]["code"] == 0 and j["tx_results"][0]["kind"] == "transfer"
    assert chain.ledger.model(b"m").to_json()["model_id"] == b"m".hex()
    assert chain.ledger.account(ADDR["alice"]).to_json() == {
        "balance": START_BALANCE - 1, "nonce": 1, "pub_key": KEYS["alice"].public_key.hex()}
    assert chain.ledger.account(ADDR["bob"]).to_json()["pub_key"] == ""
    assert chain.ledger.supply_breakdown().to_json()["total"] > 0


def test_store_grows_when_the_map_is_full(tmp_path):
    """A block that does not fit the LMDB map is re-run after the map grows."""
    g = make_genesis()
    with Ledger.open(tmp_path / "small", g, map_size=64 * 1024, durable=False) as small, \
            Ledger.open(tmp_path / "big", g, durable=False) as big:
        chain = Chain(small)
        txs = [chain.tx("alice", RegisterModelBody(model_id=b"m%03d" % i, weights_hash=WEIGHTS,
                                                   metadata=b"x" * 4000)) for i in range(60)]
        rs = small.apply_block(1, 5_000, ADDR["proposer"], txs)
        rb = big.apply_block(1, 5_000, ADDR["proposer"], txs)
        assert all(r.ok for r in rs.tx_results)
        assert rs.app_hash == rb.app_hash and small.model(b"m059") is not None
        assert small._store._env.info()["map_size"] > 64 * 1024  # it did grow


def test_listing_queries(make_chain):
    from ledger_helpers import draft, file_claim

    from node.ledger import RegisterModelBody as Reg
    from node.ledger import RequestAccessBody
    c = make_chain(params={"claim_bond_bp": 0, "claim_min_matches": 4})
    fps = setup_oml(c)
    for mid in (b"a", b"b", b"c"):
        c.ok("alice", Reg(model_id=mid, weights_hash=WEIGHTS))
    c.ok("bob", RequestAccessBody(model_id=b"model-1", collateral=20_000))
    c.ok("alice", RequestAccessBody(model_id=b"a", collateral=0))
    ids = [m.model_id for m in c.ledger.models()]
    assert ids == sorted(ids) == [b"a", b"b", b"c", b"model-1"]
    assert [m.model_id for m in c.ledger.models(start=b"b\x00", limit=1)] == [b"c"]
    hosts = c.ledger.hosts_of(b"model-1")
    assert {h.host for h in hosts} == {ADDR["host"], ADDR["bob"]}
    assert [h.host for h in c.ledger.hosts_of(b"a")] == [ADDR["alice"]]
    assert c.ledger.hosts_of(b"model-") == []  # a prefix of another id is not a match
    assert not c.ledger.index_burned(b"model-1", ADDR["host"], 2)
    file_claim(c, draft(fps, (2, 0, 1, 3)))
    assert c.ledger.index_burned(b"model-1", ADDR["host"], 2)
    assert [cl.claim_id for cl in c.ledger.claims()] == [0]
    assert c.ledger.claims(start_id=1) == []
    with pytest.raises(LedgerUsageError):
        c.ledger.models(limit=0)
