"""Envelope failures for every transaction kind: bad signature, wrong chain id,
replayed or skipped nonce are rejected and change nothing, not even the nonce."""

from __future__ import annotations

import pytest
from ledger_helpers import CHAIN, KEYS, ONE_OF_EACH

from node.ledger import Code, build_tx


def _unchanged(chain, raw, code):
    before = chain.ledger.export_state()
    result = chain.block([raw]).tx_results[0]
    assert result.code == code, (result.code, result.log)
    after = chain.ledger.export_state()
    for table in before:
        if table != "meta":
            assert before[table] == after[table], table


@pytest.mark.parametrize("body", ONE_OF_EACH, ids=lambda b: type(b).__name__)
def test_envelope_failures_for_every_kind(chain, body):
    alice = KEYS["alice"]
    good = build_tx(alice, CHAIN, 0, body)
    forged = good[:-1] + bytes([good[-1] ^ 0x01])
    assert chain.ledger.check_tx(forged).code == Code.BAD_SIGNATURE
    _unchanged(chain, forged, Code.BAD_SIGNATURE)
    other_chain = build_tx(alice, "other-chain", 0, body)
    assert chain.ledger.check_tx(other_chain).code == Code.WRONG_CHAIN
    _unchanged(chain, other_chain, Code.WRONG_CHAIN)
    skipped = build_tx(alice, CHAIN, 1, body)
    _unchanged(chain, skipped, Code.BAD_NONCE)
    # the real one: whatever its outcome, it consumes nonce 0 ...
    first = chain.block([good]).tx_results[0]
    assert not first.code.rejected
    assert chain.ledger.account(alice.address).nonce == 1
    # ... so replaying it is rejected
    assert chain.ledger.check_tx(good).code == Code.BAD_NONCE
    _unchanged(chain, good, Code.BAD_NONCE)
