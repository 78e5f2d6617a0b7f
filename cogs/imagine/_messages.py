"""What a job's message says: its status line while it waits and runs, and the finished grid's embed.

Every sentence comes from :mod:`bot.texts`, in ``locale``'s language (the member's who asked, see
:func:`cogs.languages.job_locale`); member text is shown verbatim (no markdown, no mentions).
"""

from __future__ import annotations

import io

import discord

from bot.config import shorthand_name
from bot.engine import Event, Loading, Progress, Queued, Started
from bot.imaging.grid import progress_bar
from bot.jobs import Job, JobKind, JobResult
from bot.texts import text

EMBED_COLOUR = discord.Colour(0x5865F2)


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def quote(value: str) -> str:
    """Show member text verbatim: no markdown, no mentions rendered."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(value))


def headline(job: Job, locale: str | None = None) -> str:
    request = job.request
    if request.kind is JobKind.REFINE:
        return text("job.refining", locale=locale, tile=request.parent_tile, job=request.parent_job, seed=request.seed)
    if request.kind is JobKind.UPSCALE:
        return text("job.upscaling", locale=locale, tile=request.parent_tile, job=request.parent_job, seed=request.seed)
    if request.kind is JobKind.VARY:
        return text(
            "job.varying", locale=locale, tile=request.parent_tile, job=request.parent_job, strength=request.strength
        )
    return clip(quote(request.prompt), 300)


def job_line(job: Job, line: str, locale: str | None = None) -> str:
    """A job's message: its headline in bold, then one line of news."""
    return f"**{headline(job, locale)}**\n{line}"


def status_text(job: Job, event: Event | None, locale: str | None = None) -> str:
    """The line shown while a job waits or runs."""
    if isinstance(event, Queued):
        line = (
            text("job.next", locale=locale)
            if event.position == 1
            else text("job.position", locale=locale, position=event.position)
        )
    elif isinstance(event, Progress):
        eta = event.eta
        left = text("job.eta", locale=locale, seconds=eta) if eta is not None and event.step < event.total else ""
        line = text("job.progress", locale=locale, bar=progress_bar(event.step, event.total)) + left
    elif isinstance(event, Started):
        line = text("job.starting", locale=locale)
    elif isinstance(event, Loading):
        line = text("job.loading_model", locale=locale, model=quote(event.model))
    else:
        line = text("job.queued", locale=locale)
    return job_line(job, line, locale)


def cancelled_text(job: Job, by: str | None, locale: str | None = None) -> str:
    note = (
        text("job.cancelled_by", locale=locale, who=discord.utils.escape_markdown(by))
        if by
        else text("job.cancelled", locale=locale)
    )
    return job_line(job, note, locale)


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
    locale: str | None = None,
) -> tuple[discord.Embed, discord.File]:
    """The finished grid: an embed with every parameter, and the image (``image`` or the PNG) attached.

    ``flagged`` tiles are named in the embed; ``spoiler`` sends the image as a spoiler.
    """
    request = job.request
    filename = f"seedgrid-{job.id}.{ext}"
    embed = discord.Embed(colour=EMBED_COLOUR)
    prompt_line = text("grid.prompt", locale=locale, prompt=clip(quote(request.prompt), 1500))
    if request.kind is JobKind.REFINE:
        embed.title = clip(
            text("grid.refined_title", locale=locale, tile=request.parent_tile, job=request.parent_job), 256
        )
        lines = [prompt_line]
        lines += [f"**{i}** · {clip(quote(s), 200)}" for i, s in enumerate(request.suffixes, start=1)]
        embed.description = clip("\n".join(lines), 4000)
    elif request.kind is JobKind.UPSCALE:
        title = text(
            "grid.upscaled_title",
            locale=locale,
            tile=request.parent_tile,
            job=request.parent_job,
            width=request.width,
            height=request.height,
        )
        embed.title = clip(title, 256)
        embed.description = clip(prompt_line, 4000)
    elif request.kind is JobKind.VARY:
        title = text(
            "grid.varied_title",
            locale=locale,
            tile=request.parent_tile,
            job=request.parent_job,
            strength=request.strength,
        )
        embed.title = clip(title, 256)
        embed.description = clip(prompt_line, 4000)
    else:
        embed.title = clip(request.prompt, 256)
    if request.kind in (JobKind.REFINE, JobKind.UPSCALE):  # one seed: the parent tile's
        embed.add_field(name=text("grid.seed", locale=locale), value=str(request.seed), inline=True)
    else:
        seeds = " · ".join(f"**{i}** {tile.seed}" for i, tile in enumerate(result.tiles, start=1))
        embed.add_field(name=text("grid.seeds", locale=locale), value=seeds, inline=False)
    if request.negative:
        embed.add_field(
            name=text("grid.negative", locale=locale), value=clip(quote(request.negative), 1024), inline=False
        )
    embed.add_field(name=text("grid.steps", locale=locale), value=str(request.steps), inline=True)
    embed.add_field(name=text("grid.guidance", locale=locale), value=f"{request.guidance:g}", inline=True)
    embed.add_field(name=text("grid.size", locale=locale), value=f"{request.width}×{request.height}", inline=True)
    embed.add_field(name=text("grid.model", locale=locale), value=clip(model, 1024), inline=True)
    if request.upscaler:  # a dedicated upscaler: no image-to-image strength; its name, never a local path
        upscaler = shorthand_name(request.upscaler)
        embed.add_field(name=text("grid.upscaler", locale=locale), value=clip(upscaler, 1024), inline=True)
    elif request.source:
        embed.add_field(name=text("grid.strength", locale=locale), value=f"{request.strength:g}", inline=True)
    embed.add_field(
        name=text("grid.time", locale=locale),
        value=text("grid.time_value", locale=locale, seconds=result.elapsed),
        inline=True,
    )
    if flagged:
        tiles = ", ".join(str(n) for n in flagged)
        note = text("grid.flagged_hidden" if hidden else "grid.flagged_spoiler", locale=locale, tiles=tiles)
        embed.add_field(name=text("grid.safety", locale=locale), value=note, inline=False)
    file = discord.File(
        io.BytesIO(result.grid_png if image is None else image), filename=filename, spoiler=spoiler and bool(flagged)
    )
    if not file.spoiler:  # a spoilered image cannot be shown inside the embed without revealing it
        embed.set_image(url=f"attachment://{filename}")
    footer = text(
        "grid.upscale_footer" if request.kind is JobKind.UPSCALE else "grid.footer", locale=locale, job=job.id
    )
    embed.set_footer(text=footer)
    return embed, file
