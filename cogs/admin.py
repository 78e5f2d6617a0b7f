"""/seedgrid status | queue | pause | resume | cancel: for members with Manage Server (by default).

``default_permissions`` hides the group from everyone else; server admins can change who sees it in
Server Settings → Integrations. Every action is logged with who did it.
"""

from __future__ import annotations

import datetime
import logging
import statistics
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import EngineStatus, ModelInfo, WorkerInfo
from bot.texts import Text, text
from cogs.languages import described, locale_of
from cogs.replies import reply, reply_error

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)

QUEUE_LINES = 40
WORKER_NAMES = 10


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class AdminCog(commands.GroupCog, group_name="seedgrid", group_description=described("admin.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.started = time.monotonic()
        super().__init__()

    def _audit(self, interaction: discord.Interaction, action: str) -> None:
        log.info("admin %s (%d) in guild %s: %s", interaction.user, interaction.user.id, interaction.guild_id, action)

    @app_commands.command(name="status", description=described("admin.status.description"))
    async def status(self, interaction: discord.Interaction) -> None:
        midnight = datetime.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        status = await self.engine.status(since=midnight.timestamp())
        self._audit(interaction, "status")
        uptime = time.monotonic() - self.started
        await reply(interaction, status_report(status, uptime=uptime, locale=locale_of(interaction)))

    @app_commands.command(name="queue", description=described("admin.queue.description"))
    async def queue(self, interaction: discord.Interaction) -> None:
        listing = self.engine.queue()
        locale = locale_of(interaction)
        lines = [text("admin.queue.running", locale=locale, job=j.id, user=j.request.user_id) for j in listing.running]
        lines += [
            text("admin.queue.waiting", locale=locale, position=position, job=j.id, user=j.request.user_id)
            for position, j in enumerate(listing.waiting, start=1)
        ]
        self._audit(interaction, "queue")
        shown = "\n".join(lines[:QUEUE_LINES]) if lines else text("admin.queue.empty", locale=locale)
        if len(lines) > QUEUE_LINES:
            shown += "\n" + text("admin.queue.more", locale=locale, count=len(lines) - QUEUE_LINES)
        await reply(interaction, shown)

    @app_commands.command(name="pause", description=described("admin.pause.description"))
    async def pause(self, interaction: discord.Interaction) -> None:
        self.engine.pause()
        self._audit(interaction, "pause")
        await reply(interaction, Text("admin.paused"))

    @app_commands.command(name="resume", description=described("admin.resume.description"))
    async def resume(self, interaction: discord.Interaction) -> None:
        self.engine.resume()
        self._audit(interaction, "resume")
        await reply(interaction, Text("admin.resumed"))

    @app_commands.command(name="cancel", description=described("admin.cancel.description"))
    @app_commands.describe(job=described("admin.cancel.job"))
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, 2**53 - 1]) -> None:
        stored = await self.engine.job(job)
        if stored is None or stored.request.guild_id != interaction.guild_id:
            await reply_error(interaction, Text("admin.no_such_job", job=job))
            return
        if not self.engine.cancel(job, by=interaction.user.display_name):
            await reply_error(interaction, Text("admin.not_running", job=job))
            return
        self._audit(interaction, f"cancel job {job}")
        await reply(interaction, Text("admin.cancelled", job=job))


def status_report(status: EngineStatus, *, uptime: float, locale: str | None = None) -> str:
    model = status.model
    queue = text("admin.status.queue", locale=locale, waiting=status.waiting, running=status.running)
    done = text("admin.status.done_today", locale=locale, count=len(status.run_times))
    if status.run_times:
        done += text("admin.status.median", locale=locale, seconds=statistics.median(status.run_times))
    lines = [
        text("admin.status.model", locale=locale, model=model.model if model else "?"),
        text(
            "admin.status.device",
            locale=locale,
            device=model.device if model else "?",
            dtype=model.dtype if model else "?",
        ),
        *_model_lines(model, locale),
        queue + (text("admin.status.paused", locale=locale) if status.paused else ""),
        *_worker_lines(status.workers, locale),
        done,
        *(
            [text("admin.status.delivering", locale=locale, count=status.waiting_for_delivery)]
            if status.waiting_for_delivery
            else []
        ),
        text("admin.status.uptime", locale=locale, uptime=_duration(uptime, locale)),
    ]
    return "\n".join(lines)


def _model_lines(model: ModelInfo | None, locale: str | None) -> list[str]:
    """With several models: which ones this device serves, and which it holds loaded now."""
    if model is None or len(model.models) < 2:
        return []
    listed = ", ".join(
        text("admin.status.model_loaded", locale=locale, name=name) if name in model.loaded else name
        for name in model.models
    )
    return [text("admin.status.models", locale=locale, models=listed)]


def _worker_lines(workers: list[WorkerInfo] | None, locale: str | None) -> list[str]:
    """With the redis backend: the live GPU workers and what each is doing."""
    if workers is None:
        return []
    if not workers:
        return [text("admin.status.no_workers", locale=locale)]
    listed = ", ".join(
        f"{w.name} ({w.device}{': ' + '/'.join(w.model.models) if w.model.models else ''}"
        f"{f', job {w.job}' if w.job else ''})"
        for w in workers[:WORKER_NAMES]
    )
    if len(workers) > WORKER_NAMES:
        listed += text("admin.status.workers_more", locale=locale, count=len(workers) - WORKER_NAMES)
    return [text("admin.status.workers", locale=locale, count=len(workers), listed=listed)]


def _duration(seconds: float, locale: str | None) -> str:
    """``1d 2h 3m 4s``, as the language writes it."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = text("duration.clock", locale=locale, hours=hours, minutes=minutes, seconds=secs)
    return text("duration.days", locale=locale, days=days, clock=clock) if days else clock


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(AdminCog(bot))
