"""A token bucket per key (a member): bursts up to ``capacity``, then ``per_second`` on average.

A key that has not been seen has a full bucket, so a bucket that has refilled is the same as
no bucket: it is forgotten, and memory holds only the keys active within the last
``capacity / per_second`` seconds (the time an empty bucket takes to refill).

Not thread-safe: use one from one thread (the event loop).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable

_EPSILON = 1e-9
"""Slack for float rounding: a token that is 1 - 1e-9 full after waiting the time :meth:`take`
said counts as whole."""


class TokenBucket:
    """``take(key)`` one token from ``key``'s bucket, or learn how long until there is one."""

    def __init__(
        self,
        capacity: int,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if not (math.isfinite(per_second) and per_second > 0):
            raise ValueError(f"per_second must be a positive number, got {per_second}")
        self.capacity = capacity
        self.per_second = per_second
        self._clock = clock
        self._refill_time = capacity / per_second
        # key → (tokens, when they were counted); in order of last use, oldest first
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def __len__(self) -> int:
        """Buckets held in memory (keys used within about the last ``capacity / per_second`` s)."""
        return len(self._buckets)

    def tokens(self, key: Hashable) -> float:
        """Tokens in ``key``'s bucket now (``capacity`` for a key not seen lately)."""
        return self._level(key, self._clock())

    def take(self, key: Hashable) -> float:
        """Take a token: 0.0 when one was taken, else the seconds until one is there (nothing taken)."""
        now = self._clock()
        self._forget_full(now)
        tokens = self._level(key, now)
        if tokens >= 1 - _EPSILON:
            self._store(key, max(tokens - 1, 0.0), now)
            return 0.0
        return (1 - tokens) / self.per_second

    def refund(self, key: Hashable) -> None:
        """Give back a token taken for a job that was then refused for another reason."""
        now = self._clock()
        tokens = min(self._level(key, now) + 1, float(self.capacity))
        if tokens >= self.capacity:
            self._buckets.pop(key, None)  # full: the same as no bucket
        else:
            self._store(key, tokens, now)

    def _level(self, key: Hashable, now: float) -> float:
        state = self._buckets.get(key)
        if state is None:
            return float(self.capacity)
        tokens, then = state
        return min(float(self.capacity), tokens + max(0.0, now - then) * self.per_second)

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets.pop(key, None)  # re-insert: the dict stays in order of last use
        self._buckets[key] = (tokens, now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets untouched for a whole refill time: they are full. Amortised O(1)."""
        while self._buckets:
            key, (_, then) = next(iter(self._buckets.items()))
            if now - then < self._refill_time:
                break
            del self._buckets[key]
