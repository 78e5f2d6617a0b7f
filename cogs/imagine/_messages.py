"""What a job's message says: its status line while it waits and runs, and the finished grid's embed.

Every sentence comes from :mod:`bot.texts`; member text is shown verbatim (no markdown, no mentions).
"""

from __future__ import annotations

import io

import discord

from bot.engine import Event, Loading, Progress, Queued, Started
from bot.imaging.grid import progress_bar
from bot.jobs import Job, JobKind, JobResult
from bot.texts import text

EMBED_COLOUR = discord.Colour(0x5865F2)


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _quote(value: str) -> str:
    """Show member text verbatim: no markdown, no mentions rendered."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(value))


def headline(job: Job) -> str:
    request = job.request
    if request.kind is JobKind.REFINE:
        return text("job.refining", tile=request.parent_tile, job=request.parent_job, seed=request.seed)
    if request.kind is JobKind.UPSCALE:
        return text("job.upscaling", tile=request.parent_tile, job=request.parent_job, seed=request.seed)
    if request.kind is JobKind.VARY:
        return text("job.varying", tile=request.parent_tile, job=request.parent_job, strength=request.strength)
    return _clip(_quote(request.prompt), 300)


def job_line(job: Job, line: str) -> str:
    """A job's message: its headline in bold, then one line of news."""
    return f"**{headline(job)}**\n{line}"


def status_text(job: Job, event: Event | None) -> str:
    """The line shown while a job waits or runs."""
    if isinstance(event, Queued):
        line = text("job.next") if event.position == 1 else text("job.position", position=event.position)
    elif isinstance(event, Progress):
        eta = event.eta
        left = text("job.eta", seconds=eta) if eta is not None and event.step < event.total else ""
        line = text("job.progress", bar=progress_bar(event.step, event.total)) + left
    elif isinstance(event, Started):
        line = text("job.starting")
    elif isinstance(event, Loading):
        line = text("job.loading_model", model=_quote(event.model))
    else:
        line = text("job.queued")
    return job_line(job, line)


def cancelled_text(job: Job, by: str | None) -> str:
    note = text("job.cancelled_by", who=discord.utils.escape_markdown(by)) if by else text("job.cancelled")
    return job_line(job, note)


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
        embed.title = _clip(text("grid.refined_title", tile=request.parent_tile, job=request.parent_job), 256)
        lines = [text("grid.prompt", prompt=_clip(_quote(request.prompt), 1500))]
        lines += [f"**{i}** · {_clip(_quote(s), 200)}" for i, s in enumerate(request.suffixes, start=1)]
        embed.description = _clip("\n".join(lines), 4000)
        embed.add_field(name=text("grid.seed"), value=str(request.seed), inline=True)
    elif request.kind is JobKind.UPSCALE:
        title = text(
            "grid.upscaled_title",
            tile=request.parent_tile,
            job=request.parent_job,
            width=request.width,
            height=request.height,
        )
        embed.title = _clip(title, 256)
        embed.description = _clip(text("grid.prompt", prompt=_clip(_quote(request.prompt), 1500)), 4000)
        embed.add_field(name=text("grid.seed"), value=str(request.seed), inline=True)
    else:
        if request.kind is JobKind.VARY:
            title = text(
                "grid.varied_title", tile=request.parent_tile, job=request.parent_job, strength=request.strength
            )
            embed.title = _clip(title, 256)
            embed.description = _clip(text("grid.prompt", prompt=_clip(_quote(request.prompt), 1500)), 4000)
        else:
            embed.title = _clip(request.prompt, 256)
        seeds = " · ".join(f"**{i}** {tile.seed}" for i, tile in enumerate(result.tiles, start=1))
        embed.add_field(name=text("grid.seeds"), value=seeds, inline=False)
    if request.negative:
        embed.add_field(name=text("grid.negative"), value=_clip(_quote(request.negative), 1024), inline=False)
    embed.add_field(name=text("grid.steps"), value=str(request.steps), inline=True)
    embed.add_field(name=text("grid.guidance"), value=f"{request.guidance:g}", inline=True)
    embed.add_field(name=text("grid.size"), value=f"{request.width}×{request.height}", inline=True)
    embed.add_field(name=text("grid.model"), value=_clip(model, 1024), inline=True)
    if request.source:
        embed.add_field(name=text("grid.strength"), value=f"{request.strength:g}", inline=True)
    embed.add_field(name=text("grid.time"), value=text("grid.time_value", seconds=result.elapsed), inline=True)
    if flagged:
        tiles = ", ".join(str(n) for n in flagged)
        note = text("grid.flagged_hidden" if hidden else "grid.flagged_spoiler", tiles=tiles)
        embed.add_field(name=text("grid.safety"), value=note, inline=False)
    file = discord.File(
        io.BytesIO(result.grid_png if image is None else image), filename=filename, spoiler=spoiler and bool(flagged)
    )
    if not file.spoiler:  # a spoilered image cannot be shown inside the embed without revealing it
        embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=text("grid.upscale_footer" if request.kind is JobKind.UPSCALE else "grid.footer", job=job.id))
    return embed, file
