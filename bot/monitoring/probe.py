"""Short calls onto an event loop from another thread, each with a deadline.

The monitoring endpoint answers from a thread of its own, so that it can tell a wedged event loop
(``/healthz``) instead of being wedged with it. Whatever it needs from the bot's state it asks the loop
for, as a short callback or coroutine run *on* the loop, and waits at most ``timeout`` seconds: the loop
never blocks on a scrape, and nothing owned by the loop is read from another thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class LoopProbe:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def ping(self, timeout: float) -> float | None:
        """Seconds the loop took to run a callback scheduled now, or None when it did not within ``timeout``."""
        if self._on_loop_thread():
            return 0.0  # asked from the loop itself: it is evidently running
        answered = threading.Event()
        asked = time.perf_counter()
        try:
            self.loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # the loop is closed
            return None
        if not answered.wait(timeout):
            return None
        return time.perf_counter() - asked

    def run(self, work: Callable[[], Awaitable[T]], timeout: float) -> T:
        """``await work()`` on the loop; ``TimeoutError`` when that takes over ``timeout`` s (it is then cancelled)."""
        if self._on_loop_thread():
            raise RuntimeError("LoopProbe.run waits for the loop: call it from another thread")

        async def call() -> T:
            return await work()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the event loop did not answer within {timeout:g} s") from None

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False
