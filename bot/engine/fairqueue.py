"""A round-robin queue: one job per user per turn, users in order of arrival.

The next job belongs to the user with the fewest jobs started since they joined the queue (ties:
who came first), so a member with one job waits for at most one job of every other member with
work queued, however many jobs someone else has queued, and a newcomer goes before members who
have already had a turn. A user's turns are remembered while any of their jobs is queued or
running (the runner reports the end of a job with :meth:`finished`), so a member whose first job
is running when they queue more does not start afresh. Plain data structure, no asyncio.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class FairQueue(Generic[K, T]):
    def __init__(self) -> None:
        # users in order of arrival, each with their own FIFO; and how many turns each has had
        self._turns: collections.OrderedDict[K, collections.deque[T]] = collections.OrderedDict()
        self._served: dict[K, int] = {}
        self._running: collections.Counter[K] = collections.Counter()

    def __len__(self) -> int:
        return sum(len(items) for items in self._turns.values())

    def __bool__(self) -> bool:
        return bool(self._turns)

    def push(self, key: K, item: T) -> None:
        """Queue ``item`` for user ``key`` (a user new to the queue has had no turn yet)."""
        self._turns.setdefault(key, collections.deque()).append(item)
        self._served.setdefault(key, 0)

    def _next_user(self, served: dict[K, int], turns: dict[K, collections.deque[T]] | dict[K, list[T]]) -> K:
        return min(turns, key=lambda k: served[k])  # min keeps the first (earliest) of equals

    def pop(self) -> T:
        """The next item: the oldest item of the user who has had the fewest turns.

        The item counts as running for its user until :meth:`finished` is called with the key.
        """
        if not self._turns:
            raise IndexError("pop from an empty FairQueue")
        key = self._next_user(self._served, self._turns)
        items = self._turns[key]
        item = items.popleft()
        self._served[key] += 1
        self._running[key] += 1
        if not items:
            del self._turns[key]
        return item

    def finished(self, key: K) -> None:
        """A popped item of ``key`` has finished running; a user with nothing queued or running starts afresh."""
        if self._running[key] > 0:
            self._running[key] -= 1
        if self._running[key] <= 0:
            del self._running[key]
        self._forget_if_idle(key)

    def _forget_if_idle(self, key: K) -> None:
        if key not in self._turns and key not in self._running:
            self._served.pop(key, None)

    def remove(self, key: K, item: T) -> bool:
        items = self._turns.get(key)
        if items is None or item not in items:
            return False
        items.remove(item)
        if not items:
            del self._turns[key]
            self._forget_if_idle(key)
        return True

    def count(self, key: K) -> int:
        return len(self._turns.get(key, ()))

    def __iter__(self) -> Iterator[T]:
        """Items in the order :meth:`pop` will serve them."""
        turns = {key: list(items) for key, items in self._turns.items()}
        served = dict(self._served)
        while turns:
            key = self._next_user(served, turns)
            yield turns[key].pop(0)
            served[key] += 1
            if not turns[key]:
                del turns[key]

    def drain(self) -> list[T]:
        """Everything, in serving order, leaving the queue empty."""
        items = list(self)
        self._turns.clear()
        for key in list(self._served):
            self._forget_if_idle(key)
        return items
