"""register_model / update_model: success and each failure mode."""

from __future__ import annotations

from ledger_helpers import ADDR, WEIGHTS, WEIGHTS_BLOB

from node.ledger import Code, RegisterModelBody, UpdateModelBody


def reg(model_id=b"m1", **kw):
    return RegisterModelBody(model_id=model_id, weights_hash=WEIGHTS, **kw)


def test_register_model_stores_terms(chain):
    chain.ok("owner", reg(metadata=b'{"name":"llama"}', price_per_query=7, min_collateral=50,
                          omlizers=(ADDR["omlizer"],), splits=((ADDR["contrib1"], 1000),),
                          royalty_bp=300))
    m = chain.ledger.model(b"m1")
    assert m.owner == ADDR["owner"] and m.owner_pubkey and m.price_per_query == 7
    assert m.omlizers == (ADDR["omlizer"],) and m.splits == ((ADDR["contrib1"], 1000),)
    assert m.parent == b"" and m.depth == 0 and m.royalty_bp == 300
    assert m.registered_height == chain.ledger.height
    assert m.to_json()["owner"] == ADDR["owner"].hex()
    assert m.blob_id == b"" and m.to_json()["blob_id"] == ""


def test_register_model_stores_blob_id(chain):
    r = chain.ok("owner", reg(blob_id=WEIGHTS_BLOB))
    m = chain.ledger.model(b"m1")
    assert m.blob_id == WEIGHTS_BLOB and m.to_json()["blob_id"] == WEIGHTS_BLOB.hex()
    assert type(m).decode(m.encode()) == m  # the stored record keeps it
    assert r.events[0].attrs["blob_id"] == WEIGHTS_BLOB.hex()


def test_register_twice_fails(chain):
    chain.ok("owner", reg())
    chain.fail("alice", reg(), Code.ALREADY_EXISTS)
    assert chain.ledger.model(b"m1").owner == ADDR["owner"]


def test_splits_over_100_percent_fail(chain):
    chain.fail("owner", reg(splits=((ADDR["contrib1"], 6000), (ADDR["contrib2"], 4001))),
               Code.INVALID_ARGUMENT)


def test_duplicate_or_zero_splits_fail(chain):
    chain.fail("owner", reg(splits=((ADDR["contrib1"], 10), (ADDR["contrib1"], 10))),
               Code.INVALID_ARGUMENT)
    chain.fail("owner", reg(splits=((ADDR["contrib1"], 0),)), Code.INVALID_ARGUMENT)
    chain.fail("owner", reg(omlizers=(ADDR["omlizer"], ADDR["omlizer"])), Code.INVALID_ARGUMENT)


def test_too_many_splits_fail(make_chain):
    c = make_chain(params={"max_splits": 2})
    splits = tuple((bytes([i]) * 20, 10) for i in range(3))
    c.fail("owner", reg(splits=splits), Code.INVALID_ARGUMENT)
    c.ok("owner", reg(splits=splits[:2]))


def test_unknown_parent_fails(chain):
    chain.fail("owner", reg(parent=b"nope"), Code.NOT_FOUND)


def test_parent_chain_depth_is_capped(make_chain):
    c = make_chain(params={"max_parent_depth": 2})
    c.ok("owner", reg(b"g0"))
    c.ok("owner", reg(b"g1", parent=b"g0"))
    c.ok("owner", reg(b"g2", parent=b"g1"))
    assert c.ledger.model(b"g2").depth == 2
    c.fail("owner", reg(b"g3", parent=b"g2"), Code.INVALID_ARGUMENT)


def test_update_model_by_owner(chain):
    chain.ok("owner", reg(price_per_query=1, omlizers=(ADDR["omlizer"],)))
    chain.ok("owner", UpdateModelBody(model_id=b"m1", metadata=b"v2", price_per_query=9,
                                      min_collateral=3, omlizers=(ADDR["alice"],),
                                      splits=((ADDR["bob"], 5),), royalty_bp=10))
    m = chain.ledger.model(b"m1")
    assert (m.metadata, m.price_per_query, m.min_collateral) == (b"v2", 9, 3)
    assert m.omlizers == (ADDR["alice"],) and m.splits == ((ADDR["bob"], 5),)
    assert m.weights_hash == WEIGHTS and m.royalty_bp == 10


def test_update_model_unauthorised_and_unknown(chain):
    chain.ok("owner", reg())
    chain.fail("alice", UpdateModelBody(model_id=b"m1", price_per_query=0), Code.UNAUTHORIZED)
    chain.fail("owner", UpdateModelBody(model_id=b"zz"), Code.NOT_FOUND)
    chain.fail("owner", UpdateModelBody(model_id=b"m1", splits=((ADDR["bob"], 9_000),
                                                                 (ADDR["alice"], 1_001))),
               Code.INVALID_ARGUMENT)


def test_update_model_replaces_the_blob_id_but_not_the_weights_hash(chain):
    """Re-publishing the same weights to a new OMLizer set makes a new blob."""
    chain.ok("owner", reg(omlizers=(ADDR["omlizer"],), blob_id=WEIGHTS_BLOB))
    new_blob = bytes(range(32))
    r = chain.ok("owner", UpdateModelBody(model_id=b"m1", omlizers=(ADDR["alice"],),
                                          blob_id=new_blob))
    m = chain.ledger.model(b"m1")
    assert m.blob_id == new_blob and m.omlizers == (ADDR["alice"],)
    assert m.weights_hash == WEIGHTS
    assert r.events[0].attrs["blob_id"] == new_blob.hex()


def test_update_model_body_is_a_full_replacement_so_empty_clears_the_blob_id(chain):
    chain.ok("owner", reg(blob_id=WEIGHTS_BLOB))
    chain.ok("owner", UpdateModelBody(model_id=b"m1"))
    assert chain.ledger.model(b"m1").blob_id == b""


def test_failed_update_keeps_the_blob_id(chain):
    chain.ok("owner", reg(blob_id=WEIGHTS_BLOB))
    chain.fail("alice", UpdateModelBody(model_id=b"m1", blob_id=bytes(32)), Code.UNAUTHORIZED)
    assert chain.ledger.model(b"m1").blob_id == WEIGHTS_BLOB
