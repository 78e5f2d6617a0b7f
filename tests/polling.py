"""Waiting for a condition the test cannot be notified of: polled, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(
    condition: Callable[[], T | Awaitable[T]], *, within: float = 30.0, every: float = 0.01, what: str = ""
) -> T:
    """``condition()``'s first truthy value (it may be a coroutine function), checked every ``every`` seconds.

    Fails with an AssertionError naming ``what`` after ``within`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what or condition}")
        await asyncio.sleep(every)
