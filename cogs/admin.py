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

from ._messages import NO_MENTIONS
from .imagine import reply_error

if TYPE_CHECKING:
    from .client import SeedgridBot

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days}d"] if days else []
    return " ".join([*parts, f"{hours}h {minutes}m {secs}s"])


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class AdminCog(commands.GroupCog, group_name="seedgrid", group_description="Run the image bot (admins)"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.started = time.monotonic()
        super().__init__()

    async def _answer(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _audit(self, interaction: discord.Interaction, action: str) -> None:
        log.info("admin %s (%d) in guild %s: %s", interaction.user, interaction.user.id, interaction.guild_id, action)

    @app_commands.command(name="status", description="Model, device, queue and today's figures")
    async def status(self, interaction: discord.Interaction) -> None:
        executor = self.engine.executor
        midnight = datetime.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        times = await self.engine.store.finished_since(midnight.timestamp())
        info = self.engine.info
        lines = [
            f"**Model** {info.model if info else '?'}",
            f"**Device** {info.device if info else '?'} · **dtype** {info.dtype if info else '?'}",
            f"**Queue** {executor.queue_depth} waiting, {len(executor.running)} running"
            + (" · **paused**" if executor.paused else ""),
            *_worker_lines(executor),
            f"**Jobs done today** {len(times)}"
            + (f" · **median time** {statistics.median(times):.1f} s" if times else ""),
            f"**Uptime** {_duration(time.monotonic() - self.started)}",
        ]
        self._audit(interaction, "status")
        await self._answer(interaction, "\n".join(lines))

    @app_commands.command(name="queue", description="Who is waiting, in the order the jobs will run")
    async def queue(self, interaction: discord.Interaction) -> None:
        executor = self.engine.executor
        lines = [f"▶️ job {j.id} · <@{j.request.user_id}> · running" for j in executor.running]
        lines += [
            f"{position}. job {j.id} · <@{j.request.user_id}>" for position, j in enumerate(executor.waiting, start=1)
        ]
        self._audit(interaction, "queue")
        text = "\n".join(lines[:40]) if lines else "The queue is empty."
        if len(lines) > 40:
            text += f"\n… and {len(lines) - 40} more"
        await self._answer(interaction, text)

    @app_commands.command(name="pause", description="Refuse new jobs and start no queued ones until resumed")
    async def pause(self, interaction: discord.Interaction) -> None:
        self.engine.executor.pause()
        self._audit(interaction, "pause")
        await self._answer(interaction, "⏸ Paused: new jobs are refused; queued ones wait for `/seedgrid resume`.")

    @app_commands.command(name="resume", description="Take new jobs again and run the queue")
    async def resume(self, interaction: discord.Interaction) -> None:
        self.engine.executor.resume()
        self._audit(interaction, "resume")
        await self._answer(interaction, "▶️ Resumed.")

    @app_commands.command(name="cancel", description="Cancel a queued or running job")
    @app_commands.describe(job="The job number (shown under every grid and in /seedgrid queue)")
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[int, 1, 2**53 - 1]) -> None:
        stored = await self.engine.store.get_job(job)
        if stored is None or stored.request.guild_id != interaction.guild_id:
            await reply_error(interaction, f"There is no job {job} in this server.")
            return
        if not self.engine.cancel(job):
            await reply_error(interaction, f"Job {job} is not waiting or running.")
            return
        self._audit(interaction, f"cancel job {job}")
        note_cancel = getattr(self.bot.get_cog("Imagine"), "note_cancel", None)
        if note_cancel is not None:  # (extensions are separate module objects: no isinstance here)
            note_cancel(job, interaction.user.display_name)
        await self._answer(interaction, f"🚫 Job {job} cancelled.")


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(AdminCog(bot))


def _worker_lines(executor: object) -> list[str]:
    """With the redis backend: the live GPU workers and what each is doing."""
    workers = getattr(executor, "workers", None)
    if workers is None:
        return []
    if not workers:
        return ["**Workers** none connected: jobs wait until one starts (`python -m bot worker`)"]
    listed = ", ".join(f"{w.name} ({w.device}{f', job {w.job}' if w.job else ''})" for w in workers[:10])
    more = f" and {len(workers) - 10} more" if len(workers) > 10 else ""
    return [f"**Workers** {len(workers)}: {listed}{more}"]
