"""Virtual time and an unreliable network, both driven by one seeded RNG.

Before GST (global stabilisation time) the network may lose, duplicate,
delay (and so reorder) messages and split the nodes into two partitions
for a while; from GST on every message between live nodes arrives within
``delta_ms``. That is the partial-synchrony model of the Tendermint paper:
safety must hold throughout, termination only after GST.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from typing import Any


class EventQueue:
    """A min-heap of (time, seq, item): ties break by insertion order, so runs replay exactly."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Any]] = []
        self._seq = 0
        self.now = 0

    def push(self, at_ms: int, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(at_ms, self.now), self._seq, item))

    def pop(self) -> Any:
        at, _, item = heapq.heappop(self._heap)
        self.now = at
        return item

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkConditions:
    gst_ms: int = 8_000
    #: delay range before GST (wide, so messages reorder)
    min_delay_ms: int = 0
    max_delay_ms: int = 1_500
    #: delay bound from GST on
    delta_ms: int = 100
    loss: float = 0.2
    duplication: float = 0.1
    partitions: bool = True


@dataclass(frozen=True, slots=True)
class Partition:
    start_ms: int
    end_ms: int
    side: frozenset[int]

    def cuts(self, a: int, b: int, at_ms: int) -> bool:
        return self.start_ms <= at_ms < self.end_ms and ((a in self.side) != (b in self.side))


class Network:
    """Decides when (and whether, and how often) each message arrives."""

    def __init__(self, conditions: NetworkConditions, rng: random.Random, n: int) -> None:
        self.c = conditions
        self.rng = rng
        self.partition: Partition | None = None
        if conditions.partitions and conditions.gst_ms > 0 and n >= 2:
            start = rng.randrange(0, max(1, conditions.gst_ms // 2))
            end = rng.randrange(start + 1, conditions.gst_ms + 1)
            size = rng.randrange(1, n)
            self.partition = Partition(start, end, frozenset(rng.sample(range(n), size)))

    def delays(self, src: int, dst: int, now_ms: int) -> list[int]:
        """Delivery delays for one message from ``src`` to ``dst`` sent at ``now_ms``."""
        c, rng = self.c, self.rng
        if now_ms >= c.gst_ms:
            return [rng.randint(min(1, c.delta_ms), c.delta_ms)]
        if self.partition is not None and self.partition.cuts(src, dst, now_ms):
            return []
        if rng.random() < c.loss:
            return []
        # a message sent before GST still arrives by GST + delta at the latest
        latest = max(1, min(c.max_delay_ms, c.gst_ms + c.delta_ms - now_ms))
        out = [rng.randint(min(c.min_delay_ms, latest), latest)]
        if rng.random() < c.duplication:
            out.append(rng.randint(min(c.min_delay_ms, latest), latest))
        return out
