"""The prover's database (real LMDB) and its claim commitment."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from consensus.encoding import encode
from node.roles.cursor import RoleDB
from node.roles.prover import claimtx
from node.roles.prover.store import TABLES, ClaimRecord, KeySet, Probe, ProverStore

MODEL, HOST = b"tiny", b"\x05" * 20


def probe(key: str, output: str, outcome: str = "ok", endpoint: str = "http://e/v1") -> Probe:
    return Probe(seq=0, time_ms=1, endpoint=endpoint, served_model="m", model_id=MODEL.hex(),
                 host=HOST.hex(), fp_index=0, key=key, purpose="target", outcome=outcome,
                 output=output)


@pytest.fixture
def store(tmp_path: Path):
    db = RoleDB(tmp_path / "db", TABLES)
    yield ProverStore(db)
    db.close()


def test_every_probe_is_recorded_in_order_and_only_successes_feed_the_decision(
        store: ProverStore) -> None:
    store.record_probe(probe("k", " a"), samples_cap=2)
    store.record_probe(probe("k", "", outcome="timeout"), samples_cap=2)
    store.record_probe(probe("k", " b"), samples_cap=2)
    store.record_probe(probe("k", " c"), samples_cap=2)  # over the cap: recorded, not used
    store.record_probe(probe("k", " z", endpoint="http://other/v1"), samples_cap=2)
    assert [p.seq for p in store.probes()] == [0, 1, 2, 3, 4]
    assert [p.outcome for p in store.probes()][:2] == ["ok", "timeout"]
    assert store.outputs("http://e/v1", "m", "k") == [" a", " b"]
    assert store.outputs("http://other/v1", "m", "k") == [" z"]
    assert [p.seq for p in store.probes(after=2, limit=1)] == [3]
    assert store.probe_count() == 5
    assert store.failures("http://e/v1", "m", "k") == 1
    assert store.failures("http://other/v1", "m", "k") == 0


def test_probes_and_claims_survive_a_reopen(tmp_path: Path) -> None:
    db = RoleDB(tmp_path / "db", TABLES)
    s = ProverStore(db)
    s.record_probe(probe("k", " a"), samples_cap=3)
    claim = s.new_claim(ClaimRecord(local_id=0, model_id=MODEL.hex(), host=HOST.hex(),
                                    generation=0, endpoint="e", served_model="m",
                                    items=[[4, "k", " a"]], salt="00" * 32, commitment="11" * 32,
                                    bond=100))
    claim.state, claim.commit_tx = "commit_signed", "abcd"
    s.save_claim(claim)
    db.close()
    s = ProverStore(RoleDB(tmp_path / "db", TABLES))
    assert s.outputs("http://e/v1", "m", "k") == [" a"]
    (again,) = s.claims()
    assert again.state == "commit_signed" and again.commit_tx == "abcd"
    assert again.salt == "00" * 32
    assert "salt" not in again.to_json() and "commit_tx" not in again.to_json()
    assert s.used(MODEL, HOST, 0) == {4}
    s.db.close()


def test_indices_named_in_a_claim_or_burned_are_used_until_released(store: ProverStore) -> None:
    claim = store.new_claim(ClaimRecord(local_id=0, model_id=MODEL.hex(), host=HOST.hex(),
                                        generation=1, endpoint="e", served_model="m",
                                        items=[[2, "a", "x"], [6, "b", "y"]], salt="",
                                        commitment="", bond=1))
    with store.db.write() as txn:
        store.mark_burned(txn, MODEL, HOST, 1, 9)
    assert store.used(MODEL, HOST, 1) == {2, 6, 9}
    assert store.used(MODEL, HOST, 0) == frozenset()  # another generation: a fresh index space
    store.release(claim)
    assert store.used(MODEL, HOST, 1) == {9}


def test_a_deal_is_stored_once(store: ProverStore) -> None:
    ks = KeySet(model_id=MODEL.hex(), host=HOST.hex(), generation=0, omlizer_peer="p",
                keys=[[0, "a"], [1, "a"]])
    assert store.put_keyset(ks) is True
    assert store.put_keyset(ks) is False
    assert store.keysets() == [ks]


ITEMS = [(3, "alpha beta", " r"), (7, "gamma", " s\u00e9")]


def test_commitment_is_the_contract_hash() -> None:
    salt = bytes(range(32))
    expect = hashlib.sha256(b"oml/claim/v1" + encode([
        b"chain", b"\x01" * 20, MODEL, HOST,
        [[3, b"alpha beta", b" r"], [7, b"gamma", " s\u00e9".encode()]], salt])).digest()
    assert claimtx.claim_commitment("chain", b"\x01" * 20, MODEL, HOST, ITEMS, salt) == expect


def test_commitment_binds_every_field() -> None:
    salt = bytes(32)
    base = claimtx.claim_commitment("c", b"\x01" * 20, MODEL, HOST, ITEMS, salt)
    variants = [
        ("d", b"\x01" * 20, MODEL, HOST, ITEMS, salt),
        ("c", b"\x02" * 20, MODEL, HOST, ITEMS, salt),
        ("c", b"\x01" * 20, b"other", HOST, ITEMS, salt),
        ("c", b"\x01" * 20, MODEL, b"\x06" * 20, ITEMS, salt),
        ("c", b"\x01" * 20, MODEL, HOST, ITEMS[::-1], salt),
        ("c", b"\x01" * 20, MODEL, HOST, [(3, "alpha beta", " r!"), ITEMS[1]], salt),
        ("c", b"\x01" * 20, MODEL, HOST, ITEMS, b"\x01" + bytes(31)),
    ]
    assert all(claimtx.claim_commitment(*v) != base for v in variants)
    assert len(claimtx.new_salt()) == 32 and claimtx.new_salt() != claimtx.new_salt()


def test_claim_id_comes_from_the_commit_event() -> None:
    events = [{"type": "transfer", "attributes": {}},
              {"type": "claim_committed", "attributes": {"claim_id": 12}}]
    assert claimtx.claim_id_from_events(events) == 12
    assert claimtx.claim_id_from_events(events[:1]) is None
