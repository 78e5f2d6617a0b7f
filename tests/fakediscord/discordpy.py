"""Helpers to point the real discord.py client at a :class:`~.server.FakeDiscord`."""

# The test-facing API takes ``timeout=`` arguments by design (wait_until_ready(timeout=10), ...).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import discord
import yarl

from tests.fakediscord.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Set ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` to the fake; restore them on exit."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def running(client: ClientT, fake: FakeDiscord, *, timeout: float = 10.0) -> AsyncIterator[ClientT]:
    """Run ``client.start(fake.token)`` in the background until the fake has sent READY + GUILD_CREATE.

    ``setup_hook`` (and so ``tree.sync()``) has completed by then. On exit the client is closed and any
    exception it died with is re-raised.
    """
    with pointed_at(fake):
        task = asyncio.create_task(client.start(fake.token), name="fakediscord-client")
        ready = asyncio.create_task(fake.wait_until_ready(timeout))
        try:
            done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # raises what the client died with
                raise RuntimeError("the discord.py client stopped before it was ready")
            ready.result()
            yield client
        finally:
            ready.cancel()
            # discord.py fires on_ready guild_ready_timeout (2 s) after the last GUILD_CREATE; a client closed
            # before that would later crash in that pending task ("'_MissingSentinel' has no create_task").
            pending = getattr(getattr(client, "_connection", None), "_ready_task", None)
            if isinstance(pending, asyncio.Task):
                pending.cancel()
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await task
