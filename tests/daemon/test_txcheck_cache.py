"""The daemon's mempool check path feeds the ledger's verified-signature cache.

The daemon wires ``Mempool(config.mempool, CachedCheck(chain.ledger))`` and
executes blocks with ``Chain.execute`` -> ``Ledger.apply_block``. A
transaction admitted through that path must not have its signature verified
again when its block is applied, nor when the pool is rechecked after a
block; one this node never saw must be verified in the block, and the results
must be those of a ledger that verifies everything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.crypto import PrivateKey
from node.config import Config
from node.ledger import Code, TransferBody, build_tx
from node.ledger import ledger as ledger_module
from node.ledger.txs import Tx
from node.mempool import Mempool
from node.txcheck import CachedCheck

from ._chainkit import Producer, close_chain, make_genesis, open_chain


@pytest.fixture
def counted(monkeypatch):
    """Counts signatures verified in blocks and outside them (mempool checks)."""
    counts = {"block": 0, "check": 0}
    real_verify_all = ledger_module.verify_all
    real_verify_signature = Tx.verify_signature

    def verify_all(txs, pool, chunk=64):
        counts["block"] += len(txs)
        return real_verify_all(txs, pool, chunk)

    def verify_signature(self):
        counts["check"] += 1
        return real_verify_signature(self)

    monkeypatch.setattr(ledger_module, "verify_all", verify_all)
    monkeypatch.setattr(Tx, "verify_signature", verify_signature)
    return counts


def test_mempool_admitted_txs_are_not_verified_again_in_the_block(tmp_path: Path, counted):
    genesis, signers, accounts = make_genesis(n_validators=1, n_accounts=3)
    chain = open_chain(tmp_path / "node", genesis)
    try:
        check = CachedCheck(chain.ledger)
        mempool = Mempool(Config().mempool, check)
        chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
        producer = Producer(chain, signers, accounts)
        seen = [producer.transfer(0, accounts[2].address, 1) for _ in range(150)]
        unseen = [producer.transfer(1, accounts[2].address, 1) for _ in range(50)]
        later = [producer.transfer(0, accounts[2].address, 1) for _ in range(20)]
        for tx in seen + later:
            assert mempool.add(tx).accepted
        # validly signed, but from a key with no account: refused, and not cached
        stranger = build_tx(PrivateKey(bytes([3]) * 32), chain.chain_id, 0,
                            TransferBody(to=accounts[2].address, amount=1))
        assert mempool.add(stranger).code == Code.UNKNOWN_SENDER
        assert counted == {"block": 0, "check": 171}

        _block, _commit = producer.produce(tuple(seen + unseen))
        assert counted["block"] == len(unseen)  # only what the mempool never saw
        assert counted["check"] == 171          # the recheck after the block verified nothing
        assert len(mempool) == len(later)
        assert chain.ledger.account(accounts[2].address).balance == 10**9 + 200  # all applied

        # the same transactions on a ledger without the cache give the same app hash
        plain_chain = open_chain(tmp_path / "plain", genesis)
        try:
            plain = Producer(plain_chain, signers, accounts)
            plain.produce(tuple(seen + unseen))
            assert plain_chain.ledger.app_hash == chain.ledger.app_hash
            assert counted["block"] == 2 * len(unseen) + len(seen)
        finally:
            close_chain(plain_chain)
    finally:
        close_chain(chain)
