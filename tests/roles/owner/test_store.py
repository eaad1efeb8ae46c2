"""The owner's LMDB tables and the group-commit journal: durable, never a seq twice."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.roles.owner.decide import Voucher
from node.roles.owner.journal import GrantJournal, JournalClosed
from node.roles.owner.ratelimit import RateLimiter
from node.roles.owner.store import (
    GrantEntry,
    LastRedeem,
    OwnerStore,
    OwnerStoreError,
    PendingRedeem,
    pair_key,
    split_pair_key,
)

M, H1, H2 = b"model", b"\x01" * 20, b"\x02" * 20


def entry(host: bytes, first: int, n: int, height: int = 5) -> GrantEntry:
    return GrantEntry(model_id=M, host=host,
                      voucher=Voucher(cumulative_count=first + n, cumulative_amount=3 * (first + n),
                                      signature=bytes([first]) * 64),
                      first_seq=first, query_hashes=tuple(bytes([i]) * 32 for i in range(n)),
                      issued_height=height)


def test_grants_persist_across_a_reopen(tmp_path: Path) -> None:
    store = OwnerStore.open(tmp_path)
    store.record_grant(entry(H1, 0, 3))
    store.record_grant(entry(H1, 3, 2, height=6))
    store.close()
    store = OwnerStore.open(tmp_path)
    held = store.held(M, H1)
    assert held is not None and held.permitted == 5
    assert held.voucher.cumulative_count == 5 and held.last_batch.first_seq == 3
    assert held.last_batch.issued_height == 6 and len(held.last_batch.query_hashes) == 2
    assert store.issued(M, H1) == [(0, 3, 5), (3, 2, 6)]
    assert [(m, h) for m, h, _ in store.pairs()] == [(M, H1)]
    store.close()


def test_a_seq_granted_once_is_refused_in_the_same_and_a_later_commit(tmp_path: Path) -> None:
    store = OwnerStore.open(tmp_path)
    results = store.record_grants([entry(H1, 0, 3), entry(H1, 1, 3), entry(H2, 0, 1)])
    assert isinstance(results[1], OwnerStoreError)
    assert not isinstance(results[0], OwnerStoreError)
    assert not isinstance(results[2], OwnerStoreError)
    with pytest.raises(OwnerStoreError):
        store.record_grant(entry(H1, 2, 4))
    assert store.held(M, H1).permitted == 3  # type: ignore[union-attr]
    assert store.issued(M, H1) == [(0, 3, 5)]
    store.close()


def test_pending_and_last_redeem(tmp_path: Path) -> None:
    store = OwnerStore.open(tmp_path)
    store.put_pending(M, H1, PendingRedeem(tx=b"tx", cumulative_count=3, cumulative_amount=9))
    assert store.pending(M, H1).tx == b"tx"  # type: ignore[union-attr]
    with store.db.write() as txn:
        store.drop_pending(M, H1, txn)
        store.put_last(M, H1, LastRedeem(tx_hash=b"h" * 32, height=7, code=-1,
                                         cumulative_count=3, cumulative_amount=9), txn)
    assert store.pending(M, H1) is None
    assert store.last(M, H1).to_json()["ok"] is False  # type: ignore[union-attr]
    assert split_pair_key(pair_key(M, H2)) == (M, H2)
    store.close()


async def test_journal_writes_concurrent_grants_in_one_commit(tmp_path: Path) -> None:
    store = OwnerStore.open(tmp_path)
    journal = GrantJournal(store)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(journal.run)
        pendings = [journal.submit(entry(bytes([i]) * 20, 0, 2)) for i in range(10)]
        helds = [await p.wait() for p in pendings]
        assert all(h.permitted == 2 for h in helds)
        assert journal.commits == 1 and journal.grants == 10
        nursery.cancel_scope.cancel()
    late = journal.submit(entry(H1, 2, 1))
    with pytest.raises(JournalClosed):
        await late.wait()
    store.close()


def test_rate_limiter_refills_at_the_rate() -> None:
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)  # per key
    assert not limiter.allow("a", 0.25)
    assert limiter.allow("a", 0.5) and not limiter.allow("a", 0.5)
    limiter.prune(100.0)
    assert len(limiter) == 0
