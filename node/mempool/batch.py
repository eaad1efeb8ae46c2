"""Gossip batching: many transactions per gossip message.

py-libp2p's gossipsub has no backpressure and silently drops beyond a small
per-peer queue (see LIBP2P.md), so sending one message per transaction at
1,000+ tx/s loses transactions. Instead the node gathers transactions for a
short time (or until a size cap) and publishes them as one canonical array.

Wire format (consensus.encoding, canonical msgpack):
``[BATCH_VERSION, [tx_0, tx_1, ...]]`` with every ``tx_i`` a byte string and
at least one transaction. :func:`decode_batch` is the only entry point for
bytes from peers and raises only :class:`BatchDecodeError`.

:class:`GossipBatcher` is sans-IO: the caller passes the current time in and
publishes what it returns, so its flush rule is testable without a clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.encoding import DecodeError, decode, encode, expect_bytes, expect_int, expect_list

BATCH_VERSION = 1


class BatchDecodeError(DecodeError):
    """A peer sent bytes that are not a valid transaction batch."""


class BatchError(ValueError):
    """Our own misuse of the batch helpers (empty batch, bad limits)."""


def _bin_overhead(n: int) -> int:
    """msgpack header bytes for a bin of length ``n``."""
    if n < 256:
        return 2
    if n < 65536:
        return 3
    return 5


def _array_overhead(n: int) -> int:
    """msgpack header bytes for an array of ``n`` items."""
    if n < 16:
        return 1
    if n < 65536:
        return 3
    return 5


def batch_size(sizes: Sequence[int]) -> int:
    """Exact encoded size of a batch of transactions with these byte lengths."""
    # outer array of 2 (1 byte) + version fixint (1 byte) + inner array.
    return 2 + _array_overhead(len(sizes)) + sum(n + _bin_overhead(n) for n in sizes)


def encode_batch(txs: Sequence[bytes]) -> bytes:
    """Encode a non-empty list of transactions as one gossip message."""
    if not txs:
        raise BatchError("a batch holds at least one transaction")
    return encode([BATCH_VERSION, [bytes(t) for t in txs]])


def decode_batch(data: bytes, *, max_bytes: int, max_count: int,
                 max_tx_bytes: int | None = None) -> list[bytes]:
    """Decode a gossip batch from a peer, enforcing every limit before trusting it.

    Raises:
        BatchDecodeError: oversized, malformed, non-canonical, wrong version,
            empty, too many transactions, or a transaction over ``max_tx_bytes``.
    """
    try:
        value = decode(data, max_size=max_bytes)
        outer = expect_list(value, 2, what="batch")
        version = expect_int(outer[0], what="batch version")
        if version != BATCH_VERSION:
            raise BatchDecodeError(f"unsupported batch version {version}")
        items = expect_list(outer[1], what="batch txs", max_length=max_count)
        if not items:
            raise BatchDecodeError("empty batch")
        return [expect_bytes(t, what=f"batch tx {i}", max_size=max_tx_bytes)
                for i, t in enumerate(items)]
    except BatchDecodeError:
        raise
    except DecodeError as exc:
        raise BatchDecodeError(str(exc)) from None


class GossipBatcher:
    """Decides when gathered transactions go out as one batch.

    A batch is flushed when adding the next transaction would push its
    encoded size past ``max_batch_bytes`` (the full batch goes out and the new
    transaction starts the next one), or when ``linger_ms`` have passed since
    its first transaction (the caller calls :meth:`poll` at
    :meth:`deadline_ms`). A single transaction larger than the cap goes out
    alone rather than being lost; the mempool's ``max_tx_bytes`` keeps that
    from happening with sane config.
    """

    def __init__(self, *, max_batch_bytes: int, linger_ms: int) -> None:
        if max_batch_bytes <= 0 or linger_ms < 0:
            raise BatchError("max_batch_bytes must be positive and linger_ms non-negative")
        self._max = max_batch_bytes
        self._linger = linger_ms
        self._txs: list[bytes] = []
        self._sizes: list[int] = []
        self._since_ms: int | None = None

    def __len__(self) -> int:
        return len(self._txs)

    def deadline_ms(self) -> int | None:
        """When :meth:`poll` must next be called, or None if nothing is pending."""
        if self._since_ms is None:
            return None
        return self._since_ms + self._linger

    def add(self, tx: bytes, now_ms: int) -> list[bytes]:
        """Queue ``tx``; returns encoded batches that are ready to publish now."""
        out: list[bytes] = []
        if self._txs and batch_size([*self._sizes, len(tx)]) > self._max:
            out.append(self._take())
        self._txs.append(bytes(tx))
        self._sizes.append(len(tx))
        if self._since_ms is None:
            self._since_ms = now_ms
        if batch_size(self._sizes) >= self._max or self._linger == 0:
            out.append(self._take())
        return out

    def poll(self, now_ms: int) -> list[bytes]:
        """Returns the pending batch if its linger time has passed."""
        deadline = self.deadline_ms()
        if deadline is not None and now_ms >= deadline:
            return [self._take()]
        return []

    def flush(self) -> list[bytes]:
        """Returns whatever is pending as a batch (on shutdown)."""
        return [self._take()] if self._txs else []

    def _take(self) -> bytes:
        data = encode_batch(self._txs)
        self._txs = []
        self._sizes = []
        self._since_ms = None
        return data
