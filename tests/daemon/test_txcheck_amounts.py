"""The daemon's mempool check refuses what cannot succeed, and the pool stays fair.

Real ledger (LMDB), the daemon's wiring ``Mempool(config.mempool,
CachedCheck(ledger))``, blocks committed through ``Chain``. A refused
transaction must leave the sender's nonce unused: the same nonce, reused
for a good transaction, is committed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.config import Config
from node.ledger import (
    Code,
    CommitClaimBody,
    FundChannelBody,
    RegisterRoleBody,
    RequestAccessBody,
    TransferBody,
    build_tx,
)
from node.mempool import CODE_OVERSPENT, CODE_SENDER_FULL, Mempool
from node.txcheck import CachedCheck

from ._chainkit import Producer, close_chain, make_genesis, open_chain

BALANCE = 1_000


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Producer, CachedCheck]]:
    genesis, signers, accounts = make_genesis(n_validators=1, n_accounts=3, balance=BALANCE)
    chain = open_chain(tmp_path / "node", genesis)
    try:
        yield Producer(chain, signers, accounts), CachedCheck(chain.ledger)
    finally:
        close_chain(chain)


def pool(check: CachedCheck, **caps: int) -> Mempool:
    return Mempool(dataclasses.replace(Config().mempool, **caps), check)


def test_zero_and_unaffordable_amounts_are_refused_and_the_nonce_stays_unused(setup) -> None:
    producer, check = setup
    chain, alice, bob = producer.chain, producer.accounts[0], producer.accounts[1]
    mempool = pool(check)
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))

    def tx(body: object, nonce: int = 0) -> bytes:
        return build_tx(alice, chain.chain_id, nonce, body)  # type: ignore[arg-type]

    refused = {
        "zero transfer": (tx(TransferBody(to=bob.address, amount=0)), Code.INVALID_ARGUMENT),
        "transfer over balance": (tx(TransferBody(to=bob.address, amount=BALANCE + 1)),
                                  Code.INSUFFICIENT_FUNDS),
        "zero channel funding": (tx(FundChannelBody(model_id=b"m", amount=0)),
                                 Code.INVALID_ARGUMENT),
        "zero role bond": (tx(RegisterRoleBody(role=1, bond=0)), Code.INVALID_ARGUMENT),
        "role bond over balance": (tx(RegisterRoleBody(role=1, bond=BALANCE + 1)),
                                   Code.INSUFFICIENT_FUNDS),
        "collateral over balance": (tx(RequestAccessBody(model_id=b"m", collateral=BALANCE + 1)),
                                    Code.INSUFFICIENT_FUNDS),
        # min_claim_bond is 100 by default (no host: the collateral-scaled part is unknown)
        "claim bond under the minimum": (tx(CommitClaimBody(
            model_id=b"m", host=bob.address, commitment=bytes(32), bond=99)), Code.BELOW_MINIMUM),
        "claim bond over balance": (tx(CommitClaimBody(
            model_id=b"m", host=bob.address, commitment=bytes(32), bond=BALANCE + 1)),
                                    Code.INSUFFICIENT_FUNDS),
    }
    for what, (raw, code) in refused.items():
        r = mempool.add(raw)
        assert not r.accepted and r.code == code, what
        assert r.codespace == code.name.lower(), what
        assert r.log, what
    assert "amount must be positive" in mempool.add(refused["zero transfer"][0]).log
    assert len(mempool) == 0
    assert chain.ledger.check_tx(refused["zero transfer"][0]).ok  # the ledger alone lets it in
    # nothing reached a block, so nonce 0 is still free: a good transfer with it commits
    good = tx(TransferBody(to=bob.address, amount=BALANCE))
    assert mempool.add(good).accepted
    producer.produce((good,))
    assert chain.ledger.account(alice.address).nonce == 1
    assert chain.ledger.account(bob.address).balance == 2 * BALANCE
    assert len(mempool) == 0


def test_pending_spending_is_counted_and_rechecked_after_a_block(setup) -> None:
    producer, check = setup
    chain, bob = producer.chain, producer.accounts[1]
    mempool = pool(check)
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
    first = producer.transfer(0, bob.address, 600)
    second = producer.transfer(0, bob.address, 600)   # alone affordable, after first not
    assert mempool.add(first).accepted
    r = mempool.add(second)
    assert r.code == CODE_OVERSPENT and r.codespace == "mempool"
    third = build_tx(producer.accounts[0], chain.chain_id, 1, TransferBody(to=bob.address,
                                                                          amount=400))
    assert mempool.add(third).accepted
    # the account is drained by a block this pool did not build (another node's
    # transaction with the same nonce): the pending 400 can no longer be paid
    other = build_tx(producer.accounts[0], chain.chain_id, 0, TransferBody(to=bob.address,
                                                                          amount=BALANCE))
    producer.produce((other,))
    assert len(mempool) == 0  # first: nonce used; third: balance 0 < 400


def test_far_future_spam_from_one_account_does_not_block_others(setup) -> None:
    producer, check = setup
    chain, spammer, honest, sink = (producer.chain, producer.accounts[0], producer.accounts[1],
                                    producer.accounts[2])
    mempool = pool(check, max_txs=20, max_future_txs_per_sender=20)
    chain.on_committed.append(lambda b, _c, _r: mempool.update(b.height, b.txs))
    spam = [build_tx(spammer, chain.chain_id, 1_000 + i, TransferBody(to=sink.address, amount=1))
            for i in range(20)]
    assert all(mempool.add(t).accepted for t in spam)
    assert len(mempool) == 20 and mempool.ready == 0
    mine = [build_tx(honest, chain.chain_id, n, TransferBody(to=sink.address, amount=1))
            for n in range(3)]
    for t in mine:
        r = mempool.add(t)
        assert r.accepted and len(r.evicted) == 1
    assert mempool.ready == 3
    producer.produce(tuple(mine))
    assert chain.ledger.account(honest.address).nonce == 3
    # with a per-sender future cap the spammer does not even fill the pool
    capped = pool(check, max_txs=20, max_future_txs_per_sender=5)
    results = [capped.add(t) for t in spam]
    assert sum(r.accepted for r in results) == 5 == len(capped)
    assert {r.code for r in results if not r.accepted} == {CODE_SENDER_FULL}
