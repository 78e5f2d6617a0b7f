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
from cogs.replies import reply, reply_error

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)

QUEUE_LINES = 40
WORKER_NAMES = 10


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class AdminCog(commands.GroupCog, group_name="seedgrid", group_description=text("admin.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.started = time.monotonic()
        super().__init__()

    def _audit(self, interaction: discord.Interaction, action: str) -> None:
        log.info("admin %s (%d) in guild %s: %s", interaction.user, interaction.user.id, interaction.guild_id, action)

    @app_commands.command(name="status", description=text("admin.status.description"))
    async def status(self, interaction: discord.Interaction) -> None:
        midnight = datetime.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        status = await self.engine.status(since=midnight.timestamp())
        self._audit(interaction, "status")
        await reply(interaction, status_report(status, uptime=time.monotonic() - self.started))

    @app_commands.command(name="queue", description=text("admin.queue.description"))
    async def queue(self, interaction: discord.Interaction) -> None:
        listing = self.engine.queue()
        lines = [text("admin.queue.running", job=j.id, user=j.request.user_id) for j in listing.running]
        lines += [
            text("admin.queue.waiting", position=position, job=j.id, user=j.request.user_id)
            for position, j in enumerate(listing.waiting, start=1)
        ]
        self._audit(interaction, "queue")
        shown = "\n".join(lines[:QUEUE_LINES]) if lines else text("admin.queue.empty")
        if len(lines) > QUEUE_LINES:
            shown += "\n" + text("admin.queue.more", count=len(lines) - QUEUE_LINES)
        await reply(interaction, shown)

    @app_commands.command(name="pause", description=text("admin.pause.description"))
    async def pause(self, interaction: discord.Interaction) -> None:
        self.engine.pause()
        self._audit(interaction, "pause")
        await reply(interaction, Text("admin.paused"))

    @app_commands.command(name="resume", description=text("admin.resume.description"))
    async def resume(self, interaction: discord.Interaction) -> None:
        self.engine.resume()
        self._audit(interaction, "resume")
        await reply(interaction, Text("admin.resumed"))

    @app_commands.command(name="cancel", description=text("admin.cancel.description"))
    @app_commands.describe(job=text("admin.cancel.job"))
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


def status_report(status: EngineStatus, *, uptime: float) -> str:
    model = status.model
    queue = text("admin.status.queue", waiting=status.waiting, running=status.running)
    done = text("admin.status.done_today", count=len(status.run_times))
    if status.run_times:
        done += text("admin.status.median", seconds=statistics.median(status.run_times))
    lines = [
        text("admin.status.model", model=model.model if model else "?"),
        text("admin.status.device", device=model.device if model else "?", dtype=model.dtype if model else "?"),
        *_model_lines(model),
        queue + (text("admin.status.paused") if status.paused else ""),
        *_worker_lines(status.workers),
        done,
        *([text("admin.status.delivering", count=status.waiting_for_delivery)] if status.waiting_for_delivery else []),
        text("admin.status.uptime", uptime=_duration(uptime)),
    ]
    return "\n".join(lines)


def _model_lines(model: ModelInfo | None) -> list[str]:
    """With several models: which ones this device serves, and which it holds loaded now."""
    if model is None or len(model.models) < 2:
        return []
    listed = ", ".join(
        text("admin.status.model_loaded", name=name) if name in model.loaded else name for name in model.models
    )
    return [text("admin.status.models", models=listed)]


def _worker_lines(workers: list[WorkerInfo] | None) -> list[str]:
    """With the redis backend: the live GPU workers and what each is doing."""
    if workers is None:
        return []
    if not workers:
        return [text("admin.status.no_workers")]
    listed = ", ".join(
        f"{w.name} ({w.device}{': ' + '/'.join(w.model.models) if w.model.models else ''}"
        f"{f', job {w.job}' if w.job else ''})"
        for w in workers[:WORKER_NAMES]
    )
    if len(workers) > WORKER_NAMES:
        listed += text("admin.status.workers_more", count=len(workers) - WORKER_NAMES)
    return [text("admin.status.workers", count=len(workers), listed=listed)]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    return " ".join([*parts, f"{hours}h {minutes}m {secs}s"])


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(AdminCog(bot))
