"""Mempool: caps, dedupe, FIFO reap, update with recheck, typed results."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from node.config import MempoolSection
from node.mempool import (
    CODE_DUPLICATE,
    CODE_FULL,
    CODE_TOO_LARGE,
    AddStatus,
    Mempool,
    MempoolError,
    tx_hash,
)


@dataclass(frozen=True)
class Outcome:
    code: int
    log: str = ""


class NonceLedger:
    """Check callback double: tx = sender byte + nonce byte + padding; nonce >= next."""

    def __init__(self) -> None:
        self.next_nonce: dict[int, int] = {}
        self.calls = 0

    def check(self, tx: bytes) -> Outcome:
        self.calls += 1
        if len(tx) < 2:
            return Outcome(7, "malformed")
        sender, nonce = tx[0], tx[1]
        if nonce < self.next_nonce.get(sender, 0):
            return Outcome(5, f"nonce {nonce} already used")
        return Outcome(0)

    def commit(self, txs: list[bytes]) -> None:
        for tx in txs:
            self.next_nonce[tx[0]] = tx[1] + 1


def tx(sender: int, nonce: int, size: int = 10) -> bytes:
    return bytes([sender, nonce]) + bytes(size - 2)


def pool(ledger: NonceLedger | None = None, **caps: int) -> tuple[Mempool, NonceLedger]:
    ledger = ledger or NonceLedger()
    return Mempool(MempoolSection(**caps), ledger.check, committed_cache_size=4), ledger


def test_accept_and_inspect() -> None:
    mp, _ = pool()
    r = mp.add(tx(1, 0))
    assert r.status is AddStatus.ACCEPTED and r.accepted and r.code == 0
    assert r.tx_hash == tx_hash(tx(1, 0))
    assert len(mp) == 1 and mp.size_bytes == 10 and r.tx_hash in mp
    assert mp.get(r.tx_hash) == tx(1, 0)
    assert list(mp) == [tx(1, 0)]


def test_duplicate_pending_is_refused_without_calling_check() -> None:
    mp, ledger = pool()
    mp.add(tx(1, 0))
    calls = ledger.calls
    r = mp.add(tx(1, 0))
    assert r.status is AddStatus.DUPLICATE and r.code == CODE_DUPLICATE
    assert r.codespace == "mempool" and "already in mempool" in r.log
    assert ledger.calls == calls and len(mp) == 1


def test_too_large_is_refused() -> None:
    mp, _ = pool(max_tx_bytes=16)
    r = mp.add(tx(1, 0, size=17))
    assert r.status is AddStatus.TOO_LARGE and r.code == CODE_TOO_LARGE
    assert len(mp) == 0 and mp.size_bytes == 0
    assert mp.add(tx(1, 0, size=16)).accepted


def test_count_cap() -> None:
    mp, _ = pool(max_txs=2)
    assert mp.add(tx(1, 0)).accepted and mp.add(tx(2, 0)).accepted
    r = mp.add(tx(3, 0))
    assert r.status is AddStatus.FULL and r.code == CODE_FULL
    assert len(mp) == 2


def test_bytes_cap() -> None:
    mp, _ = pool(max_bytes=25)
    assert mp.add(tx(1, 0, 10)).accepted and mp.add(tx(2, 0, 10)).accepted
    assert mp.add(tx(3, 0, 10)).status is AddStatus.FULL
    assert mp.add(tx(3, 0, 5)).accepted
    assert mp.size_bytes == 25


def test_rejected_carries_callback_code_and_is_not_cached() -> None:
    mp, ledger = pool()
    ledger.next_nonce[1] = 3
    r = mp.add(tx(1, 2))
    assert r.status is AddStatus.REJECTED and r.code == 5 and r.codespace == "ledger"
    assert "already used" in r.log and len(mp) == 0
    ledger.next_nonce[1] = 0  # state changed (e.g. other fork in a test): may enter now
    assert mp.add(tx(1, 2)).accepted


def test_reap_is_fifo_and_respects_limits_without_removing() -> None:
    mp, _ = pool()
    txs = [tx(i, 0, 10 + i) for i in range(5)]
    for t in txs:
        assert mp.add(t).accepted
    assert mp.reap(10_000, 3) == txs[:3]
    assert mp.reap(10 + 11 + 12, 100) == txs[:3]
    # stops at the first that does not fit rather than skipping ahead
    assert mp.reap(10 + 11 + 11, 100) == txs[:2]
    assert mp.reap(5, 100) == []
    assert mp.reap(10_000, 0) == []
    assert len(mp) == 5
    with pytest.raises(MempoolError):
        mp.reap(-1, 1)


def test_update_removes_committed_and_rechecks_rest() -> None:
    mp, ledger = pool()
    a0, a1, b0 = tx(1, 0), tx(1, 1), tx(2, 0)
    for t in (a0, a1, b0):
        assert mp.add(t).accepted
    # Block 1 commits a0 and a *different* tx of sender 2 with nonce 0 (from another node),
    # so b0's nonce is used up and the recheck must evict it.
    other_b0 = tx(2, 0, size=12)
    block = [a0, other_b0]
    ledger.commit(block)
    report = mp.update(1, block)
    assert report.height == 1 and report.removed == 1
    assert report.evicted == (tx_hash(b0),)
    assert list(mp) == [a1]
    assert mp.size_bytes == len(a1)
    assert mp.height == 1


def test_committed_tx_is_not_readded_and_cache_is_bounded() -> None:
    mp, ledger = pool()
    t = tx(1, 0)
    mp.add(t)
    ledger.commit([t])
    mp.update(1, [t])
    assert mp.recently_committed(tx_hash(t))
    # even if the callback would accept it, the committed cache refuses a re-gossip
    ledger.next_nonce.clear()
    r = mp.add(t)
    assert r.status is AddStatus.DUPLICATE and "committed" in r.log
    # cache holds 4 hashes: five more commits push the first one out
    mp.update(2, [tx(9, n) for n in range(5)], recheck=False)
    assert not mp.recently_committed(tx_hash(t))
    assert mp.add(t).accepted


def test_update_must_move_forward() -> None:
    mp, _ = pool()
    mp.update(3, [])
    with pytest.raises(MempoolError):
        mp.update(3, [])
    with pytest.raises(MempoolError):
        mp.update(2, [])


def test_remove_and_misuse() -> None:
    mp, _ = pool()
    t = tx(1, 0)
    mp.add(t)
    assert mp.remove([tx_hash(t), b"x" * 32]) == 1
    assert len(mp) == 0 and mp.size_bytes == 0
    with pytest.raises(MempoolError):
        mp.add("not bytes")  # type: ignore[arg-type]
    with pytest.raises(MempoolError):
        Mempool(MempoolSection(), NonceLedger().check, committed_cache_size=-1)


@dataclass(frozen=True)
class LedgerLikeOutcome:
    code: int
    log: str = ""
    sender: bytes = b""
    nonce: int = 0


def test_fast_recheck_by_nonce_skips_the_full_check() -> None:
    accounts = {b"A": 0, b"B": 0}
    full_checks: list[bytes] = []

    def check(t: bytes) -> LedgerLikeOutcome:
        full_checks.append(t)
        sender, nonce = t[:1], t[1]
        if sender not in accounts:
            return LedgerLikeOutcome(6, "unknown sender")
        if nonce < accounts[sender]:
            return LedgerLikeOutcome(5, "old nonce", sender, nonce)
        return LedgerLikeOutcome(0, "", sender, nonce)

    mp = Mempool(MempoolSection(), check, next_nonce=accounts.get)
    a0, a1, b0, b1 = b"A\x00", b"A\x01", b"B\x00", b"B\x01"
    for t in (a0, a1, b0, b1):
        assert mp.add(t).accepted
    full_checks.clear()
    accounts[b"A"] = 1       # a0 committed in block 1 ...
    accounts[b"B"] = 1       # ... and another B tx with nonce 0 from elsewhere
    report = mp.update(1, [a0, b"B\x00x"])
    assert full_checks == []  # no signature re-verification
    assert report.evicted == (tx_hash(b0),)
    assert list(mp) == [a1, b1]
    del accounts[b"B"]        # sender gone: its txs go too
    assert mp.update(2, []).evicted == (tx_hash(b1),)
    assert full_checks == [] and list(mp) == [a1]


def test_outcomes_without_sender_fall_back_to_full_check() -> None:
    ledger = NonceLedger()
    mp = Mempool(MempoolSection(), ledger.check, next_nonce=lambda _s: 0)
    mp.add(tx(1, 0))
    ledger.commit([tx(1, 0, size=11)])
    calls = ledger.calls
    assert mp.update(1, []).evicted == (tx_hash(tx(1, 0)),)
    assert ledger.calls == calls + 1
