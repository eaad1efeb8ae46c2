"""Property test: random add/reap/update sequences keep the mempool's invariants."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import MempoolSection
from node.mempool import AddStatus, Mempool, tx_hash


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


def tx(sender: int, nonce: int, pad: int) -> bytes:
    return bytes([sender, nonce]) + bytes(pad)


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 6), st.integers(0, 30)),
    st.tuples(st.just("reap"), st.integers(0, 200), st.integers(0, 6)),
    st.tuples(st.just("commit"), st.integers(0, 4)),
), max_size=60)


@pytest.mark.parametrize("fast_recheck", [False, True])
@settings(max_examples=150, deadline=None, derandomize=True)
@given(ops=ops)
def test_invariants(fast_recheck: bool, ops: list[tuple]) -> None:
    next_nonce: dict[int, int] = {}

    def check(t: bytes) -> Outcome:
        code = 0 if t[1] >= next_nonce.get(t[0], 0) else 5
        if fast_recheck:  # report sender/nonce like the ledger, so the pool can skip re-checks
            return LedgerOutcome(code, "", bytes([t[0]]), t[1])
        return Outcome(code)

    cfg = MempoolSection(max_txs=8, max_bytes=150, max_tx_bytes=28)
    mp = Mempool(cfg, check, committed_cache_size=10,
                 next_nonce=(lambda s: next_nonce.get(s[0], 0)) if fast_recheck else None)
    order: list[bytes] = []  # model: arrival order of pending txs
    height = 0
    for op in ops:
        if op[0] == "add":
            t = tx(op[1], op[2], op[3])
            r = mp.add(t)
            if r.status is AddStatus.ACCEPTED:
                assert t not in order
                order.append(t)
            else:
                assert r.code != 0
                if r.status is AddStatus.TOO_LARGE:
                    assert len(t) > cfg.max_tx_bytes
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
            order = [t for t in rest if check(t).code == 0]
            for t in block:
                assert mp.add(t).status is AddStatus.DUPLICATE
        assert list(mp) == order
        assert len(mp) == len(order) <= cfg.max_txs
        assert mp.size_bytes == sum(map(len, order)) <= cfg.max_bytes
