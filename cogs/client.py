"""The discord.py client: connects, loads the cogs, and owns the engine for its lifetime."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
import yarl
from discord.ext import commands

from bot.config import DiscordSettings, Settings
from bot.engine import Engine
from bot.monitoring.metrics import Metrics
from cogs import monitoring
from cogs.languages import CatalogueTranslator

if TYPE_CHECKING:
    from bot.monitoring.http import MonitoringServer

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.errors",
    "cogs.monitoring",
    "cogs.imagine",
    "cogs.recipes",
    "cogs.admin",
    "cogs.settings",
    "cogs.preferences",
)


def point_at(settings: DiscordSettings) -> None:
    """Send REST and gateway traffic to the configured endpoints.

    discord.py reads both from class attributes (this is also how REST proxies such as
    nirn-proxy are wired in), so this affects every client in the process.
    """
    discord.http.Route.BASE = settings.api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def intents() -> discord.Intents:
    """Only what slash commands and buttons need: no privileged intents."""
    return discord.Intents(guilds=True)


class SeedgridBot(commands.Bot):
    """``engine`` may be given (tests share one loaded model); otherwise it is opened in ``setup_hook``.

    ``metrics``: what the bot records into (give the engine's, when an engine is given); by default the
    bot makes its own when ``[metrics] listen`` is set, and records nothing when it is not. With a
    listen address, ``setup_hook`` serves /metrics, /healthz and /readyz before anything else.
    """

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, metrics: Metrics | None = None, **options: Any
    ) -> None:
        point_at(settings.discord)
        listen = settings.metrics.resolved_listen()
        if metrics is None and listen:
            metrics = Metrics.for_settings(settings, role="bot")
        monitor = None if metrics is None else monitoring.DiscordMonitor(metrics)
        if monitor is not None:
            options.setdefault("http_trace", monitor.trace)  # discord.py's hook for watching its requests
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            **options,
        )
        self.settings = settings
        self._engine = engine
        self._owns_engine = engine is None
        self.metrics = metrics
        self.discord_monitor = monitor
        self._listen = listen
        self.endpoint: MonitoringServer | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the engine is opened in setup_hook")
        return self._engine

    @property
    def engine_opened(self) -> bool:
        return self._engine is not None

    async def setup_hook(self) -> None:
        if self.metrics is not None and self._listen:  # first: /healthz answers while the model loads
            from bot.monitoring.health import serve

            self.endpoint = serve(
                self._listen,
                self.metrics,
                self.settings.metrics,
                readiness=partial(monitoring.readiness, self),
                snapshot=partial(monitoring.snapshot, self),
            )
        if self._engine is None:
            log.info("loading model %s", self.settings.model.id)
            self._engine = await Engine.open(self.settings, observer=self.metrics)
        await self.tree.set_translator(CatalogueTranslator())  # name_localizations for every shipped language
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.discord.sync_commands:
            synced = await self.tree.sync()
            log.info("registered %d application commands", len(synced))

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("connected as %s (%d) to %d guilds", self.user, self.user.id, len(self.guilds))

    async def close(self) -> None:
        """Shut down in order: stop taking jobs, let the running one finish and be posted, then disconnect.

        Jobs still queued (and a running job past ``executor.shutdown_timeout``) stay in the store
        and run again at the next start.
        """
        if self._engine is not None and not self.is_closed():
            if self._owns_engine:
                await self._engine.stop()
            try:  # every job's follower posts its outcome ("restarting" for what did not finish)
                await asyncio.wait_for(self._engine.drain(), self.settings.executor.shutdown_timeout + 10)
            except TimeoutError:
                log.warning("some deliveries were still in flight at shutdown")
            if self._owns_engine:
                await self._engine.close()
        await super().close()
        endpoint, self.endpoint = self.endpoint, None
        if endpoint is not None:
            await asyncio.to_thread(endpoint.stop)
