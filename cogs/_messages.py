"""What the bot's messages look like, and how progress edits are throttled."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.executor import Event, Progress, Queued, Started
from bot.grid import progress_bar
from bot.jobs import Job, JobKind, JobResult

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
EMBED_COLOUR = discord.Colour(0x5865F2)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str) -> str:
    """Show member text verbatim: no markdown, no mentions rendered."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(text))


def headline(job: Job) -> str:
    request = job.request
    if request.kind is JobKind.REFINE:
        return f"Refining tile {request.parent_tile} of job {request.parent_job} (seed {request.seed})"
    return _clip(_quote(request.prompt), 300)


def status_text(job: Job, event: Event | None) -> str:
    """The line shown while a job waits or runs."""
    lead = f"**{headline(job)}**"
    if isinstance(event, Queued):
        place = "next in line" if event.position == 1 else f"position {event.position} in the queue"
        return f"{lead}\n⏳ Queued — {place}"
    if isinstance(event, Progress):
        eta = event.eta
        left = f" · ~{eta:.0f} s left" if eta is not None and event.step < event.total else ""
        return f"{lead}\n🎨 `{progress_bar(event.step, event.total)}`{left}"
    if isinstance(event, Started):
        return f"{lead}\n🎨 Starting…"
    return f"{lead}\n⏳ Queued"


def grid_message(
    job: Job,
    result: JobResult,
    *,
    model: str,
    image: bytes | None = None,
    ext: str = "png",
    spoiler: bool = False,
    flagged: tuple[int, ...] = (),
    hidden: bool = True,
) -> tuple[discord.Embed, discord.File]:
    """The finished grid: an embed with every parameter, and the image (``image`` or the PNG) attached.

    ``flagged`` tiles are named in the embed; ``spoiler`` sends the image as a spoiler.
    """
    request = job.request
    filename = f"seedgrid-{job.id}.{ext}"
    embed = discord.Embed(colour=EMBED_COLOUR)
    if request.kind is JobKind.REFINE:
        embed.title = _clip(f"Tile {request.parent_tile} of job {request.parent_job}, refined", 256)
        lines = [f"**Prompt:** {_clip(_quote(request.prompt), 1500)}"]
        lines += [f"**{i}** · {_clip(_quote(s), 200)}" for i, s in enumerate(request.suffixes, start=1)]
        embed.description = _clip("\n".join(lines), 4000)
        embed.add_field(name="Seed", value=str(request.seed), inline=True)
    else:
        embed.title = _clip(request.prompt, 256)
        seeds = " · ".join(f"**{i}** {tile.seed}" for i, tile in enumerate(result.tiles, start=1))
        embed.add_field(name="Seeds", value=seeds, inline=False)
    if request.negative:
        embed.add_field(name="Negative", value=_clip(_quote(request.negative), 1024), inline=False)
    embed.add_field(name="Steps", value=str(request.steps), inline=True)
    embed.add_field(name="Guidance", value=f"{request.guidance:g}", inline=True)
    embed.add_field(name="Size", value=f"{request.width}×{request.height}", inline=True)
    embed.add_field(name="Model", value=_clip(model, 1024), inline=True)
    embed.add_field(name="Time", value=f"{result.elapsed:.1f} s", inline=True)
    if flagged:
        tiles = ", ".join(str(n) for n in flagged)
        how = "hidden" if hidden else "sent as a spoiler"
        embed.add_field(name="Safety", value=f"⚠️ The safety checker flagged tile(s) {tiles}: {how}.", inline=False)
    file = discord.File(
        io.BytesIO(result.grid_png if image is None else image), filename=filename, spoiler=spoiler and bool(flagged)
    )
    if not file.spoiler:  # a spoilered image cannot be shown inside the embed without revealing it
        embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=f"job {job.id} · press a number to refine that tile")
    return embed, file


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
            except discord.HTTPException as exc:
                log.warning("progress edit failed: %s", exc)
