"""Gossip batch encoding and the sans-IO batcher."""

from __future__ import annotations

import msgpack
import pytest

from consensus.encoding import encode
from node.mempool import (
    BatchDecodeError,
    BatchError,
    GossipBatcher,
    batch_size,
    decode_batch,
    encode_batch,
)


def test_roundtrip_and_exact_size() -> None:
    for sizes in ([1], [0, 255, 256], [70_000], [3] * 20, [300] * 17):
        txs = [bytes([i % 256]) * n for i, n in enumerate(sizes)]
        data = encode_batch(txs)
        assert len(data) == batch_size(sizes)
        assert decode_batch(data, max_bytes=len(data), max_count=len(txs)) == txs


def test_encode_empty_is_misuse() -> None:
    with pytest.raises(BatchError):
        encode_batch([])


@pytest.mark.parametrize("data", [
    b"",
    b"\xc1",
    encode([1, []]),                          # empty
    encode([2, [b"a"]]),                      # unknown version
    encode([1, [b"a", 5]]),                   # not bytes
    encode([1, b"a"]),                        # not a list
    encode([1, [b"a"], 0]),                   # extra field
    msgpack.packb([1, ["text"]]),             # str is not canonical
    msgpack.packb({"txs": [b"a"]}),           # map
    encode([1, [b"a"]]) + b"\x00",            # trailing bytes
])
def test_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(BatchDecodeError):
        decode_batch(data, max_bytes=1000, max_count=10)


def test_decode_limits() -> None:
    data = encode_batch([b"x" * 100, b"y"])
    with pytest.raises(BatchDecodeError, match="exceeds"):
        decode_batch(data, max_bytes=len(data) - 1, max_count=10)
    with pytest.raises(BatchDecodeError, match="limit 1"):
        decode_batch(data, max_bytes=1000, max_count=1)
    with pytest.raises(BatchDecodeError):
        decode_batch(data, max_bytes=1000, max_count=10, max_tx_bytes=99)
    assert decode_batch(data, max_bytes=1000, max_count=2, max_tx_bytes=100)[1] == b"y"


def test_batcher_flushes_on_linger_deadline() -> None:
    b = GossipBatcher(max_batch_bytes=10_000, linger_ms=50)
    assert b.deadline_ms() is None and b.poll(0) == []
    assert b.add(b"a", now_ms=1000) == []
    assert b.add(b"b", now_ms=1030) == []
    assert b.deadline_ms() == 1050
    assert b.poll(1049) == []
    (out,) = b.poll(1050)
    assert decode_batch(out, max_bytes=100, max_count=10) == [b"a", b"b"]
    assert len(b) == 0 and b.deadline_ms() is None
    b.add(b"c", now_ms=2000)
    assert b.deadline_ms() == 2050


def test_batcher_flushes_on_size_and_never_exceeds_cap() -> None:
    cap = 1000
    b = GossipBatcher(max_batch_bytes=cap, linger_ms=10_000)
    sent: list[bytes] = []
    txs = [bytes([i]) * (40 + i) for i in range(100)]
    for i, t in enumerate(txs):
        sent += b.add(t, now_ms=i)
    sent += b.flush()
    assert len(sent) > 5
    assert all(len(m) <= cap for m in sent)
    got = [t for m in sent for t in decode_batch(m, max_bytes=cap, max_count=1000)]
    assert got == txs  # nothing lost, order kept
    assert b.flush() == []


def test_batcher_oversized_tx_goes_alone_and_zero_linger_sends_immediately() -> None:
    b = GossipBatcher(max_batch_bytes=100, linger_ms=10)
    assert b.add(b"s", 0) == []
    out = b.add(b"L" * 500, 1)
    assert [decode_batch(m, max_bytes=1000, max_count=5) for m in out] == [[b"s"], [b"L" * 500]]
    z = GossipBatcher(max_batch_bytes=100, linger_ms=0)
    assert len(z.add(b"q", 0)) == 1
    with pytest.raises(BatchError):
        GossipBatcher(max_batch_bytes=0, linger_ms=1)
