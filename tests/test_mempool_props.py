"""Property test: random add/reap/update sequences keep the mempool's invariants.

The model tracks arrival order, admission heights and each sender's next
nonce, and derives from them what the pool must do: which pending
transactions are future ones, which a full pool may evict for a new one,
which an update evicts (recheck) or expires (TTL).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import MempoolSection
from node.mempool import CODE_FULL, AddStatus, Mempool, tx_hash


@dataclass(frozen=True)
class Outcome:
    code: int
    log: str = ""


@dataclass(frozen=True)
class LedgerOutcome:
    code: int
    log: str
    sender: bytes
    nonce: int


@dataclass(frozen=True)
class AccountOutcome:
    """What CachedCheck reports: also the sender's next nonce when checked."""

    code: int
    log: str
    sender: bytes
    nonce: int
    account_nonce: int


def tx(sender: int, nonce: int, pad: int) -> bytes:
    return bytes([sender, nonce]) + bytes(pad)


add_op = st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 4), st.integers(0, 30))
reap_op = st.tuples(st.just("reap"), st.integers(0, 200), st.integers(0, 6))
commit_op = st.tuples(st.just("commit"), st.integers(0, 4))
remove_op = st.tuples(st.just("remove"), st.integers(0, 7))
# adds six times in nine, so the pool is often full and has to choose what to evict
ops = st.lists(st.integers(0, 8).flatmap(
    lambda k: add_op if k < 6 else reap_op if k == 6 else commit_op if k == 7 else remove_op),
    max_size=80)


CFG = MempoolSection(max_txs=6, max_bytes=150, max_tx_bytes=28, max_txs_per_sender=4,
                     max_future_txs_per_sender=2, ttl_blocks=4, future_ttl_blocks=2)


def futures(pending: list[bytes], next_nonce: dict[int, int]) -> set[bytes]:
    """Reference rule: a tx is future unless its nonce is in the unbroken run from
    its sender's next nonce."""
    out = set()
    for sender in {t[0] for t in pending}:
        mine = [t for t in pending if t[0] == sender]
        end = next_nonce.get(sender, 0)
        while any(t[1] == end for t in mine):
            end += 1
        out |= {t for t in mine if t[1] >= end}
    return out


@pytest.mark.parametrize("mode", ["plain", "next_nonce", "account_nonce"])
@settings(max_examples=150, deadline=None, derandomize=True)
@given(ops=ops)
def test_invariants(mode: str, ops: list[tuple]) -> None:
    next_nonce: dict[int, int] = {}
    knows_sender = mode != "plain"

    def check(t: bytes) -> Outcome | LedgerOutcome | AccountOutcome:
        code = 0 if t[1] >= next_nonce.get(t[0], 0) else 5
        if mode == "next_nonce":  # sender/nonce like the ledger: the pool can skip re-checks
            return LedgerOutcome(code, "", bytes([t[0]]), t[1])
        if mode == "account_nonce":
            return AccountOutcome(code, "", bytes([t[0]]), t[1], next_nonce.get(t[0], 0))
        return Outcome(code)

    mp = Mempool(CFG, check, committed_cache_size=10,
                 next_nonce=(lambda s: next_nonce.get(s[0], 0)) if mode == "next_nonce" else None)
    order: list[bytes] = []     # model: arrival order of pending txs
    added: dict[bytes, int] = {}  # model: pool height at admission
    height = 0
    for op in ops:
        future = futures(order, next_nonce) if knows_sender else set()
        if op[0] == "add":
            t = tx(op[1], op[2], op[3])
            r = mp.add(t)
            if r.status is AddStatus.ACCEPTED:
                assert t not in order
                gone = [o for o in order if tx_hash(o) in r.evicted]
                assert len(gone) == len(r.evicted)
                # only future txs are evicted, only to make room, only for a ready tx
                assert set(gone) <= future
                assert not gone or len(order) >= CFG.max_txs or \
                    sum(map(len, order)) + len(t) > CFG.max_bytes
                assert not gone or t not in futures(order + [t], next_nonce)
                if knows_sender:
                    mine = [o for o in order if o[0] == t[0]]
                    assert len(mine) < CFG.max_txs_per_sender
                    if t in futures(order + [t], next_nonce):
                        assert len([o for o in mine if o in future]) < \
                            CFG.max_future_txs_per_sender
                order = [o for o in order if o not in gone] + [t]
                added[t] = height
            else:
                assert r.code != 0 and r.evicted == ()
                if r.status is AddStatus.TOO_LARGE:
                    assert len(t) > CFG.max_tx_bytes
                if r.status is AddStatus.FULL and r.code == CODE_FULL:
                    # refused for room: nothing evictable, or the new tx is a future one
                    fits = len(order) < CFG.max_txs and \
                        sum(map(len, order)) + len(t) <= CFG.max_bytes
                    assert not fits
                    assert not future or t in futures(order + [t], next_nonce)
        elif op[0] == "remove":  # e.g. found invalid in a block: may open a nonce gap
            if order:
                gone = order[op[1] % len(order)]
                assert mp.remove([tx_hash(gone), b"not pending"]) == 1
                order.remove(gone)
        elif op[0] == "reap":
            got = mp.reap(op[1], op[2])
            assert got == order[:len(got)]           # a FIFO prefix
            assert sum(map(len, got)) <= op[1] and len(got) <= op[2]
            if len(got) < min(op[2], len(order)):   # stopped only because the next did not fit
                assert sum(map(len, got)) + len(order[len(got)]) > op[1]
        else:
            block, rest = order[:op[1]], order[op[1]:]
            for t in block:
                next_nonce[t[0]] = max(next_nonce.get(t[0], 0), t[1] + 1)
            height += 1
            report = mp.update(height, block)
            assert report.removed == len(block)
            assert list(report.evicted) == [tx_hash(t) for t in rest if check(t).code != 0]
            rest = [t for t in rest if check(t).code == 0]
            future = futures(rest, next_nonce) if knows_sender else set()
            expired = [t for t in rest if height - added[t] >= CFG.ttl_blocks
                       or (t in future and height - added[t] >= CFG.future_ttl_blocks)]
            assert list(report.expired) == [tx_hash(t) for t in expired]
            order = [t for t in rest if t not in expired]
            for t in block:
                assert mp.add(t).status is AddStatus.DUPLICATE
        assert list(mp) == order
        assert len(mp) == len(order) <= CFG.max_txs
        assert mp.size_bytes == sum(map(len, order)) <= CFG.max_bytes
        future = futures(order, next_nonce) if knows_sender else set()
        assert {t for t in order if mp.is_future(tx_hash(t))} == future
        assert mp.ready == len(order) - len(future)
