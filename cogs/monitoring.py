"""Monitoring on the Discord side: interactions, acknowledgements, REST errors and rate limits, reconnects,
and the gateway's part of ``/readyz``. It records into the bot's :class:`~bot.monitoring.metrics.Metrics`.

The REST figures come from an ``aiohttp.TraceConfig`` handed to discord.py (``Client(http_trace=...)``,
its documented hook for watching its HTTP requests): every request discord.py sends — bot-token routes
and the interaction webhooks alike, which share its session — ends in :meth:`DiscordMonitor._on_request_end`
with the response's status and headers, including each 429's ``X-RateLimit-Bucket`` and scope. Nothing of
discord.py is patched, and no log line is parsed. An acknowledgement's latency runs from the interaction's
arrival (``on_interaction``) to Discord's answer to its first callback (``POST /interactions/<id>/…/callback``).
The URL is only matched, never kept: it holds the interaction's token.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord.ext import commands

from bot.monitoring.health import engine_readiness, engine_snapshot
from bot.monitoring.metrics import Metrics, Snapshot

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")
PENDING_LIMIT = 1000
"""Interactions remembered until their first response (older ones are forgotten: never answered)."""


class DiscordMonitor:
    """What the Discord side records; one per bot, made before the client (its ``trace`` goes to discord.py)."""

    def __init__(self, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self._clock = clock
        self._pending: collections.OrderedDict[int, tuple[str, float]] = collections.OrderedDict()
        self._connections = 0
        self.gateway_up = False
        """Between a session's READY (or RESUMED) and the next disconnect."""
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_end.append(self._on_request_end)
        self.trace.on_request_exception.append(self._on_request_exception)

    def received(self, interaction: discord.Interaction) -> None:
        kind = interaction.type.name
        self.metrics.interaction(kind)
        self._pending[interaction.id] = (kind, self._clock())
        while len(self._pending) > PENDING_LIMIT:
            self._pending.popitem(last=False)

    def connected(self) -> None:
        """A gateway session started (READY): every one after the first is a reconnect."""
        self.gateway_up = True
        self._connections += 1
        if self._connections > 1:
            self.metrics.gateway_reconnect("identify")

    def resumed(self) -> None:
        self.gateway_up = True
        self.metrics.gateway_reconnect("resume")

    def disconnected(self) -> None:
        self.gateway_up = False

    async def _on_request_end(
        self, _session: aiohttp.ClientSession, _context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        response = params.response
        status = response.status
        if status >= 400:
            self.metrics.http_error(status)
        if status == 429:
            headers = response.headers
            scope = headers.get("X-RateLimit-Scope") or ("global" if headers.get("X-RateLimit-Global") else "unknown")
            self.metrics.rate_limited(headers.get("X-RateLimit-Bucket") or "unknown", scope)
        elif status < 300 and params.method == "POST" and (match := CALLBACK.search(params.url.path)):
            pending = self._pending.pop(int(match[1]), None)
            if pending is not None:
                kind, received = pending
                self.metrics.acknowledged(kind, self._clock() - received)

    async def _on_request_exception(
        self, _session: aiohttp.ClientSession, _context: Any, _params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        self.metrics.http_error(0)  # no answer at all: the connection failed, dropped or timed out


async def readiness(bot: SeedgridBot) -> dict[str, bool]:
    """The bot is ready when it is connected to the gateway, its model is loaded (or a worker is alive) and its
    store takes writes."""
    ws = bot.ws
    monitor = bot.discord_monitor
    session = monitor.gateway_up if monitor is not None else bot.is_ready()
    gateway = session and not bot.is_closed() and ws is not None and ws.open
    return {"gateway": gateway, **await engine_readiness(bot.engine if bot.engine_opened else None)}


async def snapshot(bot: SeedgridBot) -> Snapshot:
    return await engine_snapshot(bot.engine) if bot.engine_opened else Snapshot()


class MonitoringCog(commands.Cog, name="Monitoring"):
    def __init__(self, monitor: DiscordMonitor) -> None:
        self.monitor = monitor

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.monitor.received(interaction)

    @commands.Cog.listener()
    async def on_connect(self) -> None:
        self.monitor.connected()

    @commands.Cog.listener()
    async def on_resumed(self) -> None:
        self.monitor.resumed()

    @commands.Cog.listener()
    async def on_disconnect(self) -> None:
        self.monitor.disconnected()


async def setup(bot: SeedgridBot) -> None:
    if bot.discord_monitor is not None:  # metrics are off: nothing to record
        await bot.add_cog(MonitoringCog(bot.discord_monitor))
