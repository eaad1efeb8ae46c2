"""referenced_blobs: the blob ids a committed transaction makes the chain reference."""

from __future__ import annotations

import pytest
from ledger_helpers import ADDR, CHAIN, KEYS, ONE_OF_EACH, PACKAGE_BLOB, WEIGHTS, WEIGHTS_BLOB

from node.ledger import (
    CommitOmlizationBody,
    Kind,
    RegisterModelBody,
    UpdateModelBody,
    build_tx,
    decode_tx,
    referenced_blobs,
)

H = bytes(range(32))


def _tx(body):
    return decode_tx(build_tx(KEYS["alice"], CHAIN, 0, body))


@pytest.mark.parametrize("body, want", [
    (RegisterModelBody(model_id=b"m", weights_hash=WEIGHTS, blob_id=WEIGHTS_BLOB),
     (WEIGHTS_BLOB,)),
    (RegisterModelBody(model_id=b"m", weights_hash=WEIGHTS), ()),
    (UpdateModelBody(model_id=b"m", blob_id=WEIGHTS_BLOB), (WEIGHTS_BLOB,)),
    (UpdateModelBody(model_id=b"m"), ()),
    (CommitOmlizationBody(model_id=b"m", host=ADDR["host"], package_hash=H, fp_root=H,
                          fp_count=1, package_blob=PACKAGE_BLOB), (PACKAGE_BLOB,)),
], ids=["register", "register-no-blob", "update", "update-no-blob", "commit"])
def test_blob_carrying_kinds(body, want):
    assert referenced_blobs(_tx(body)) == want


@pytest.mark.parametrize("body", ONE_OF_EACH, ids=lambda b: type(b).__name__)
def test_every_kind_is_classified(body):
    """Only the three blob-carrying kinds reference blobs; the ids are what the body carried."""
    got = referenced_blobs(_tx(body))
    if body.KIND in (Kind.REGISTER_MODEL, Kind.UPDATE_MODEL, Kind.COMMIT_OMLIZATION):
        assert got == (H,)  # the samples carry H in their blob field
    else:
        assert got == ()
    assert all(len(b) == 32 for b in got)
