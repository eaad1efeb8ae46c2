"""Mempool fairness: per-sender caps, future-nonce eviction, TTL, overspending.

The check double reports what :class:`node.txcheck.CachedCheck` reports
(sender, nonce, the account's next nonce, balance, cost), so these tests
exercise the pool's rules without a ledger; tests/daemon/test_txcheck_amounts.py
runs the same scenarios through the real ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.config import MempoolSection
from node.mempool import (
    CODE_FULL,
    CODE_OVERSPENT,
    CODE_SENDER_FULL,
    AddStatus,
    Mempool,
    tx_hash,
)


@dataclass(frozen=True)
class Outcome:
    code: int
    log: str
    sender: bytes
    nonce: int
    account_nonce: int
    balance: int
    cost: int


@dataclass
class Accounts:
    """Check double: tx = sender byte + nonce byte + cost byte + padding."""

    nonce: dict[bytes, int] = field(default_factory=dict)
    balance: dict[bytes, int] = field(default_factory=dict)

    def check(self, t: bytes) -> Outcome:
        sender, nonce, cost = t[:1], t[1], t[2]
        n = self.nonce.get(sender, 0)
        code = 5 if nonce < n else 0
        return Outcome(code, "", sender, nonce, n, self.balance.get(sender, 1000), cost)

    def commit(self, txs: list[bytes]) -> None:
        for t in txs:
            self.nonce[t[:1]] = t[1] + 1
            self.balance[t[:1]] = self.balance.get(t[:1], 1000) - t[2]


def tx(sender: bytes, nonce: int, cost: int = 1, size: int = 10) -> bytes:
    return sender + bytes([nonce, cost]) + bytes(size - 3)


def pool(accounts: Accounts | None = None, **caps: int) -> tuple[Mempool, Accounts]:
    accounts = accounts or Accounts()
    return Mempool(MempoolSection(**caps), accounts.check), accounts


def test_far_future_spam_cannot_keep_others_out_of_a_full_pool() -> None:
    # the scenario: one account, 20 far-future nonces, max_txs = 20
    mp, _ = pool(max_txs=20, max_future_txs_per_sender=20)
    spam = [tx(b"S", 100 + i) for i in range(20)]
    assert all(mp.add(t).accepted for t in spam)
    assert len(mp) == 20 and mp.ready == 0
    assert all(mp.is_future(tx_hash(t)) for t in spam)
    # another sender's executable tx gets in by evicting the spammer's furthest nonce
    honest = [tx(b"H", n) for n in range(5)]
    for t in honest:
        r = mp.add(t)
        assert r.accepted, r
        assert len(r.evicted) == 1 and r.evicted[0] in {tx_hash(s) for s in spam}
    assert len(mp) == 20 and mp.ready == 5
    assert tx_hash(spam[-1]) not in mp and tx_hash(spam[0]) in mp  # highest nonces went first


def test_future_txs_never_evict_and_executable_ones_are_never_evicted() -> None:
    mp, _ = pool(max_txs=4)
    ready = [tx(b"A", 0), tx(b"A", 1), tx(b"B", 0)]
    for t in ready:
        assert mp.add(t).accepted
    assert mp.add(tx(b"C", 7)).accepted            # future: pool now full
    r = mp.add(tx(b"D", 9))                         # another future: may evict nothing
    assert r.status is AddStatus.FULL and r.code == CODE_FULL
    r = mp.add(tx(b"E", 0))                         # executable: evicts C's future tx only
    assert r.accepted and r.evicted == (tx_hash(tx(b"C", 7)),)
    r = mp.add(tx(b"F", 0))                         # only executable txs left: plain FULL
    assert r.status is AddStatus.FULL and r.code == CODE_FULL
    assert all(tx_hash(t) in mp for t in ready)


def test_eviction_takes_from_the_sender_with_most_future_txs() -> None:
    mp, _ = pool(max_txs=4)
    for t in (tx(b"A", 5), tx(b"B", 5), tx(b"B", 6), tx(b"B", 9)):
        assert mp.add(t).accepted
    r = mp.add(tx(b"C", 0))
    assert r.evicted == (tx_hash(tx(b"B", 9)),)
    r = mp.add(tx(b"C", 1))                         # B and A tie at one each now
    assert len(r.evicted) == 1 and len(mp) == 4


def test_a_tx_filling_the_gap_makes_the_run_executable() -> None:
    mp, _ = pool()
    assert mp.add(tx(b"A", 2)).accepted and mp.add(tx(b"A", 1)).accepted
    assert mp.ready == 0
    assert mp.add(tx(b"A", 0)).accepted
    assert mp.ready == 3 and not any(mp.is_future(tx_hash(t)) for t in mp)


def test_per_sender_caps() -> None:
    mp, _ = pool(max_txs_per_sender=3, max_future_txs_per_sender=2)
    assert mp.add(tx(b"A", 10)).accepted and mp.add(tx(b"A", 11)).accepted
    r = mp.add(tx(b"A", 12))                        # a third future tx
    assert r.status is AddStatus.FULL and r.code == CODE_SENDER_FULL
    assert "max_future_txs_per_sender" in r.log
    assert mp.add(tx(b"A", 0)).accepted              # executable: still under the total cap
    r = mp.add(tx(b"A", 1))
    assert r.code == CODE_SENDER_FULL and "max_txs_per_sender" in r.log
    assert mp.add(tx(b"B", 0)).accepted              # other senders are unaffected
    assert mp.sender_count(b"A") == 3


def test_pending_txs_may_not_spend_more_than_the_balance() -> None:
    accounts = Accounts(balance={b"A": 10})
    mp, _ = pool(accounts)
    assert mp.add(tx(b"A", 0, cost=6)).accepted
    r = mp.add(tx(b"A", 1, cost=5))
    assert r.status is AddStatus.REJECTED and r.code == CODE_OVERSPENT
    assert r.codespace == "mempool" and "balance 10" in r.log
    assert mp.add(tx(b"A", 1, cost=4)).accepted
    assert mp.add(tx(b"A", 2, cost=0)).accepted     # costs nothing: always fits


def test_future_txs_expire_after_future_ttl_blocks_and_all_after_ttl_blocks() -> None:
    mp, accounts = pool(ttl_blocks=5, future_ttl_blocks=2)
    gap = tx(b"A", 3)
    waiting = tx(b"B", 0)
    assert mp.add(gap).accepted and mp.add(waiting).accepted
    assert mp.update(1, []).expired == ()
    late = tx(b"C", 4)                               # admitted one block later
    assert mp.add(late).accepted
    report = mp.update(2, [])
    assert report.expired == (tx_hash(gap),) and report.evicted == ()
    assert mp.update(3, []).expired == (tx_hash(late),)
    # the executable tx was never committed (say, the blocks were full): admitted
    # before block 1, it was in the pool for blocks 1..5 and goes after the fifth
    assert mp.update(4, []).expired == ()
    assert mp.update(5, []).expired == (tx_hash(waiting),)
    assert len(mp) == 0


def test_executable_tx_that_becomes_future_ages_from_its_admission() -> None:
    mp, accounts = pool(future_ttl_blocks=3)
    a0, a1 = tx(b"A", 0), tx(b"A", 1)
    assert mp.add(a0).accepted and mp.add(a1).accepted
    mp.update(1, [])
    assert mp.remove([tx_hash(a0)]) == 1             # e.g. found invalid in a block
    assert mp.is_future(tx_hash(a1)) and mp.ready == 0
    mp.update(2, [])
    assert mp.update(3, []).expired == (tx_hash(a1),)


def test_update_refreshes_the_account_nonce_from_the_recheck() -> None:
    mp, accounts = pool(max_txs=3)
    b1, b2 = tx(b"B", 1), tx(b"B", 2)
    assert mp.add(b1).accepted and mp.add(b2).accepted
    assert mp.ready == 0
    accounts.commit([tx(b"B", 0)])                   # B's nonce 0 committed via another node
    mp.update(1, [tx(b"B", 0)])
    assert mp.ready == 2                              # b1, b2 are executable now
    assert mp.add(tx(b"C", 9)).accepted               # pool full; C's future tx
    r = mp.add(tx(b"D", 0))
    assert r.evicted == (tx_hash(tx(b"C", 9)),)       # B's executable ones were not touched
