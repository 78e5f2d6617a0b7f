"""A round-robin queue: one job per user per turn, users in order of arrival.

A member with one job waits for at most one job of every other member with work queued,
however many jobs someone else has queued. Plain data structure, no asyncio.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class FairQueue(Generic[K, T]):
    def __init__(self) -> None:
        # users in turn order; each with their own FIFO of items
        self._turns: collections.OrderedDict[K, collections.deque[T]] = collections.OrderedDict()

    def __len__(self) -> int:
        return sum(len(items) for items in self._turns.values())

    def __bool__(self) -> bool:
        return bool(self._turns)

    def __contains__(self, item: object) -> bool:
        return any(item in items for items in self._turns.values())

    def push(self, key: K, item: T) -> None:
        """A user new to the queue takes their turn after everyone already waiting."""
        self._turns.setdefault(key, collections.deque()).append(item)

    def pop(self) -> T:
        """The next item: the first user's oldest item; that user then goes to the back."""
        if not self._turns:
            raise IndexError("pop from an empty FairQueue")
        key, items = next(iter(self._turns.items()))
        item = items.popleft()
        del self._turns[key]
        if items:
            self._turns[key] = items  # to the back of the line
        return item

    def remove(self, key: K, item: T) -> bool:
        items = self._turns.get(key)
        if items is None or item not in items:
            return False
        items.remove(item)
        if not items:
            del self._turns[key]
        return True

    def count(self, key: K) -> int:
        return len(self._turns.get(key, ()))

    def __iter__(self) -> Iterator[T]:
        """Items in the order they will be served (round after round)."""
        queues = [list(items) for items in self._turns.values()]
        depth = max((len(q) for q in queues), default=0)
        for round_ in range(depth):
            for items in queues:
                if round_ < len(items):
                    yield items[round_]

    def drain(self) -> list[T]:
        """Everything, in serving order, leaving the queue empty."""
        items = list(self)
        self._turns.clear()
        return items
