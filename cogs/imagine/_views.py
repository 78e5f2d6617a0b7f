"""The buttons under a job's message and the refine form.

Buttons are :class:`discord.ui.DynamicItem`\\ s: the job (and tile) is in the custom_id, so a
button on any message the bot ever posted works after a restart. The custom_id formats below are
a promise to every message already out there; never change one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, cast

import discord

from bot.jobs import Job, JobKind, Tile
from bot.texts import Text, text
from cogs.replies import reply_error, report_failure

if TYPE_CHECKING:
    from cogs.imagine._cog import ImagineCog

log = logging.getLogger(__name__)

UNKNOWN_INTERACTION = 10062
_FIELDS = {"job": r"(?P<job>[0-9]{1,18})", "tile": r"(?P<tile>[1-4])"}


def id_template(id_format: str) -> str:
    """The regular expression of a custom_id format: ``sg:tile:{job}:{tile}`` → ``sg:tile:(?P<job>…):(?P<tile>…)``."""
    return re.escape(id_format).replace(r"\{", "{").replace(r"\}", "}").format(**_FIELDS)


def _cog(interaction: discord.Interaction) -> ImagineCog:
    cog = cast("discord.ext.commands.Bot", interaction.client).get_cog("Imagine")
    if cog is None:
        raise RuntimeError("the imagine cog is not loaded")
    return cast("ImagineCog", cog)


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A button that names a job (and a tile) in its custom_id; a subclass gives the format, look and action.

    ``class TileButton(JobButton, id_format="sg:tile:{job}:{tile}")`` registers the template that
    matches exactly that format. (This base class's own template never matches.)
    """

    id_format: ClassVar[str]

    def __init_subclass__(cls, *, id_format: str) -> None:
        cls.id_format = id_format
        super().__init_subclass__(template=id_template(id_format))

    def __init__(self, job_id: int, tile: int | None = None, *, locale: str | None = None) -> None:
        self.job_id = job_id
        self.tile = tile
        self.locale = locale  # the label's language (a button rebuilt from a click needs no label)
        custom_id = self.id_format.format(job=job_id, tile=tile)
        super().__init__(self.make_button(custom_id))

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        raise NotImplementedError

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        raise NotImplementedError

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        tile = match.groupdict().get("tile")
        return cls(int(match["job"]), None if tile is None else int(tile))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _guarded(interaction, self.press(_cog(interaction), interaction))


class TileButton(JobButton, id_format="sg:tile:{job}:{tile}"):
    """Button N under a grid: opens the refine form for tile N of that job."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        return discord.ui.Button(label=str(self.tile), style=discord.ButtonStyle.secondary, custom_id=custom_id)

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        assert self.tile is not None
        await cog.open_refine(interaction, self.job_id, self.tile)


class RerollButton(JobButton, id_format="sg:reroll:{job}"):
    """Same prompt and settings, four new seeds."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        return discord.ui.Button(
            label=text("button.reroll", locale=self.locale),
            emoji="🎲",
            style=discord.ButtonStyle.primary,
            custom_id=custom_id,
        )

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        await cog.reroll(interaction, self.job_id)


class CancelButton(JobButton, id_format="sg:cancel:{job}"):
    """On a waiting or running job's message: the author or a moderator stops it."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        return discord.ui.Button(
            label=text("button.cancel", locale=self.locale), style=discord.ButtonStyle.danger, custom_id=custom_id
        )

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        await cog.cancel(interaction, self.job_id)


class UpscaleButton(JobButton, id_format="sg:upscale:{job}:{tile}"):
    """U1-U4 (a grid's second row): tile N alone, larger, redrawn from the enlarged tile on its seed."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        label = text("button.upscale", locale=self.locale, tile=self.tile)
        return discord.ui.Button(label=label, style=discord.ButtonStyle.secondary, custom_id=custom_id, row=1)

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        assert self.tile is not None
        await cog.upscale(interaction, self.job_id, self.tile)


class VarySubtleButton(JobButton, id_format="sg:vary-subtle:{job}:{tile}"):
    """Under an upscale: four new seeds drawn from the tile, staying close to it."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        label = text("button.vary_subtle", locale=self.locale)
        return discord.ui.Button(label=label, style=discord.ButtonStyle.primary, custom_id=custom_id)

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        assert self.tile is not None
        await cog.vary(interaction, self.job_id, self.tile, strong=False)


class VaryStrongButton(JobButton, id_format="sg:vary-strong:{job}:{tile}"):
    """Under an upscale: four new seeds drawn from the tile, further from it."""

    def make_button(self, custom_id: str) -> discord.ui.Button[Any]:
        label = text("button.vary_strong", locale=self.locale)
        return discord.ui.Button(label=label, style=discord.ButtonStyle.primary, custom_id=custom_id)

    async def press(self, cog: ImagineCog, interaction: discord.Interaction) -> None:
        assert self.tile is not None
        await cog.vary(interaction, self.job_id, self.tile, strong=True)


BUTTONS: tuple[type[JobButton], ...] = (
    TileButton,
    RerollButton,
    CancelButton,
    UpscaleButton,
    VarySubtleButton,
    VaryStrongButton,
)


def cancel_view(job: Job, locale: str | None = None) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id, locale=locale))
    return view


def grid_view(job: Job, tiles: int, *, image_to_image: bool = False, locale: str | None = None) -> discord.ui.View:
    """A grid's buttons: ``1``-``N`` (refine) and Re-roll, then, when the model can draw from an image, a second
    row ``U1``-``UN``. An upscale's: Vary (subtle), Vary (strong) and Refine (the form, on its one tile)."""
    view = discord.ui.View(timeout=None)
    if job.request.kind is JobKind.UPSCALE:
        if image_to_image:
            view.add_item(VarySubtleButton(job.id, 1, locale=locale))
            view.add_item(VaryStrongButton(job.id, 1, locale=locale))
        refine = TileButton(job.id, 1)
        refine.item.label = text("button.refine", locale=locale)
        view.add_item(refine)
        return view
    for index in range(1, tiles + 1):
        view.add_item(TileButton(job.id, index))
    if job.request.kind is JobKind.IMAGINE:
        view.add_item(RerollButton(job.id, locale=locale))
    if image_to_image:
        for index in range(1, tiles + 1):
            view.add_item(UpscaleButton(job.id, index, locale=locale))
    return view


class RefineModal(discord.ui.Modal):
    """One paragraph field, one suffix per line: each line re-runs the tile's seed as one new tile."""

    suffixes: discord.ui.TextInput[RefineModal] = discord.ui.TextInput(
        label=text("refine.label"),
        style=discord.TextStyle.paragraph,
        placeholder=text("refine.placeholder"),
        max_length=4000,
        required=True,
    )

    def __init__(
        self,
        cog: ImagineCog,
        job: Job,
        tile_index: int,
        tile: Tile,
        suggestions: tuple[str, ...],
        *,
        locale: str | None = None,
    ) -> None:
        super().__init__(
            title=text("refine.title", locale=locale, tile=tile_index, seed=tile.seed),
            custom_id=f"sg:refine:{job.id}:{tile_index}",
            timeout=15 * 60,
        )
        self.cog = cog
        self.job = job
        self.tile_index = tile_index
        self.tile = tile
        self.suffixes.default = "\n".join(suggestions) or None
        self.suffixes.label = text("refine.label", locale=locale)
        self.suffixes.placeholder = text("refine.placeholder", locale=locale)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.refine(interaction, self.job, self.tile_index, self.tile, self.suffixes.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        log.error("refine modal failed", exc_info=error)
        await reply_error(interaction, Text("error.refine"))  # in the member's language (cogs.replies)


async def _guarded(interaction: discord.Interaction, work: Awaitable[None]) -> None:
    """Run a button's work; an unexpected error is logged and the member told privately."""
    try:
        await work
    except discord.NotFound as exc:
        if exc.code == UNKNOWN_INTERACTION:  # nothing can be sent to the member any more
            log.warning("interaction %d expired before it was answered (over Discord's 3 s)", interaction.id)
        else:
            await report_failure(interaction, _what(interaction), exc)
    except Exception as exc:
        await report_failure(interaction, _what(interaction), exc)


def _what(interaction: discord.Interaction) -> str:
    return f"button {interaction.data.get('custom_id') if interaction.data else '?'}"
