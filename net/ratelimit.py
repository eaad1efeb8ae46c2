"""A token bucket that makes ``publish`` wait instead of losing messages.

Why: gossipsub has no backpressure. ``Pubsub.publish`` never blocks, and a
peer's 32-RPC outbound queue drops silently when full (LIBP2P.md: 300
back-to-back publishes, 72-75 arrived). Pacing at the source turns that
silent loss into a visible wait for the publisher, which is where the
decision (batch more, or slow down) belongs.
"""

from __future__ import annotations

from collections.abc import Callable

import trio


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    The clock is injected (default ``trio.current_time``) so tests can drive
    it; ``acquire`` is fair in arrival order because trio locks are FIFO.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] | None = None) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = float(rate)
        self._burst = float(burst)
        self._clock = clock or trio.current_time
        self._tokens = float(burst)
        self._last: float | None = None
        self._lock = trio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def try_acquire(self) -> bool:
        """Take a token if one is there, without waiting."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def acquire(self) -> None:
        """Wait until a token is available, then take it."""
        async with self._lock:
            while not self.try_acquire():
                await trio.sleep((1.0 - self._tokens) / self._rate)
