"""A job's message while it waits and runs: the latest status, edited in at most every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import discord

log = logging.getLogger(__name__)

DISCORD_ERRORS = (discord.HTTPException, aiohttp.ClientError, TimeoutError, ConnectionError)
"""What a request to Discord can fail with: an answer (``HTTPException``), or none (a connection that
failed, dropped or timed out)."""


@dataclass(frozen=True, slots=True)
class Status:
    """What a waiting or running job's message shows: a line of text and, once there is one, a preview."""

    text: str
    preview: bytes | None = None


class StatusEditor:
    """Edits one message with the latest status, at most once per ``interval`` seconds.

    ``update`` never waits; the newest status wins. ``close`` waits for an edit in flight, so the
    final edit that follows can never be overtaken by a stale progress edit.
    """

    def __init__(self, edit: Callable[[Status], Awaitable[object]], interval: float) -> None:
        self._edit = edit
        self._interval = interval
        self._latest: Status | None = None
        self._shown: Status | None = None
        self._dirty = asyncio.Event()
        self._closing = asyncio.Event()
        self._last_edit = -float("inf")
        self._task = asyncio.create_task(self._run(), name="seedgrid-status-editor")

    def update(self, status: Status) -> None:
        self._latest = status
        self._dirty.set()

    async def close(self) -> None:
        self._closing.set()
        self._dirty.set()
        await self._task

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing.is_set():
                return
            wait = self._last_edit + self._interval - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._closing.wait()
            # close() may have come in the very loop turn the timer fired: check again before
            # clearing _dirty, or its wake-up would be erased and close() would wait for ever
            if self._closing.is_set():
                return
            self._dirty.clear()
            status = self._latest
            if status is None or status == self._shown:
                continue
            self._last_edit = time.monotonic()
            try:
                await self._edit(status)
                self._shown = status
            except DISCORD_ERRORS as exc:
                log.warning("progress edit failed: %s", exc or type(exc).__name__)
