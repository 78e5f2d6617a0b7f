"""/imagine, the numbered tile buttons, the refine modal and re-roll.

Top to bottom: the buttons (DynamicItems, so they work after a restart), the modal, the cog.
Every handler answers Discord first (defer or modal) and waits on the engine afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from bot.executor import Cancelled, Done, ExecutorClosedError, Failed
from bot.grid import encode_to_fit
from bot.jobs import Job, JobKind, JobRequest, JobResult, Tile
from bot.requests import (
    UserInputError,
    imagine_request,
    parse_suffixes,
    refine_request,
    reroll_request,
)

from ._command import imagine_command
from ._messages import NO_MENTIONS, StatusEditor, grid_message, headline, status_text

if TYPE_CHECKING:
    from .client import SeedgridBot

log = logging.getLogger(__name__)

Edit = Callable[..., Awaitable[discord.Message]]


async def reply_error(interaction: discord.Interaction, message: str) -> None:
    """Tell only this member what went wrong, whether or not the interaction was answered."""
    text = f"⚠️ {message}"
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


def _cog(interaction: discord.Interaction) -> ImagineCog:
    cog = cast("SeedgridBot", interaction.client).get_cog(ImagineCog.__cog_name__)
    if cog is None:
        raise RuntimeError("the imagine cog is not loaded")
    return cast("ImagineCog", cog)


async def _guarded(interaction: discord.Interaction, work: Awaitable[None]) -> None:
    """Run a button's work; an unexpected error is logged and the member told privately."""
    try:
        await work
    except Exception:
        log.exception("button %s failed", interaction.data.get("custom_id") if interaction.data else "?")
        try:
            await reply_error(interaction, "Something went wrong; it has been logged for the bot's admin.")
        except discord.HTTPException:
            log.warning("could not tell the member about the error")


# --- buttons -----------------------------------------------------------------------------------


class TileButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"sg:tile:(?P<job>[0-9]{1,18}):(?P<tile>[1-4])"
):
    """Button N under a grid: opens the refine modal for tile N of that job."""

    def __init__(self, job_id: int, tile: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=str(tile), style=discord.ButtonStyle.secondary, custom_id=f"sg:tile:{job_id}:{tile}"
            )
        )
        self.job_id = job_id
        self.tile = tile

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> TileButton:
        return cls(int(match["job"]), int(match["tile"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _guarded(interaction, _cog(interaction).open_refine(interaction, self.job_id, self.tile))


class RerollButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"sg:reroll:(?P<job>[0-9]{1,18})"):
    """Same prompt and settings, four new seeds."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Re-roll", emoji="🎲", style=discord.ButtonStyle.primary, custom_id=f"sg:reroll:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerollButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _guarded(interaction, _cog(interaction).reroll(interaction, self.job_id))


def grid_view(job: Job, tiles: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for index in range(1, tiles + 1):
        view.add_item(TileButton(job.id, index))
    if job.request.kind is JobKind.IMAGINE:
        view.add_item(RerollButton(job.id))
    return view


# --- the refine modal --------------------------------------------------------------------------


class RefineModal(discord.ui.Modal):
    suffixes: discord.ui.TextInput[RefineModal] = discord.ui.TextInput(
        label="One suffix per line (1 to 4 lines)",
        style=discord.TextStyle.paragraph,
        placeholder=", watercolor\n, golden hour",
        max_length=4000,
        required=True,
    )

    def __init__(self, cog: ImagineCog, job: Job, tile_index: int, tile: Tile) -> None:
        super().__init__(
            title=f"Refine tile {tile_index} · seed {tile.seed}",
            custom_id=f"sg:refine:{job.id}:{tile_index}",
            timeout=15 * 60,
        )
        self.cog = cog
        self.job = job
        self.tile_index = tile_index
        self.tile = tile
        self.suffixes.default = "\n".join(cog.settings.refine.suggestions) or None

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await self.cog.refine(interaction, self.job, self.tile_index, self.tile, self.suffixes.value)

    async def on_error(self, interaction: discord.Interaction, error: Exception, /) -> None:  # type: ignore[override]
        log.error("refine modal failed", exc_info=error)
        await reply_error(interaction, "Something went wrong with this refinement; it has been logged.")


# --- the cog -----------------------------------------------------------------------------------


class ImagineCog(commands.Cog, name="Imagine"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.engine = bot.engine
        self._command = imagine_command(self.settings.generation, self.imagine)
        self._deliveries: set[asyncio.Task[None]] = set()

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(TileButton, RerollButton)
        self.bot.tree.add_command(self._command)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(TileButton, RerollButton)
        self.bot.tree.remove_command(self._command.name)
        for task in list(self._deliveries):
            task.cancel()

    @property
    def model_name(self) -> str:
        info = self.engine.info
        return info.model if info is not None else self.settings.model.id

    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        negative: str | None,
        seed: int | None,
        steps: int | None,
        guidance: float | None,
        size: str | None,
    ) -> None:
        try:
            request = imagine_request(
                self.settings.generation,
                prompt=prompt,
                negative=negative,
                seed=seed,
                steps=steps,
                guidance=guidance,
                size=size,
                user_id=interaction.user.id,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
            )
        except UserInputError as exc:
            await reply_error(interaction, str(exc))
            return
        job = await self.engine.create(request)
        await interaction.response.defer(thinking=True)
        self._follow(job, interaction.edit_original_response, interaction.filesize_limit)

    async def open_refine(self, interaction: discord.Interaction, job_id: int, tile_index: int) -> None:
        """Button N: the modal must be the first response, so only a quick store read comes before it."""
        found = await self._find(interaction, job_id)
        if found is None:
            return
        tile = await self.engine.store.get_tile(job_id, tile_index)
        if tile is None:
            await reply_error(interaction, f"Job {job_id} has no tile {tile_index}.")
            return
        await interaction.response.send_modal(RefineModal(self, found, tile_index, tile))

    async def refine(
        self, interaction: discord.Interaction, parent: Job, tile_index: int, tile: Tile, text: str
    ) -> None:
        try:
            suffixes = parse_suffixes(text, self.settings.refine)
            request = refine_request(
                parent.request,
                parent_job=parent.id,
                tile_index=tile_index,
                tile=tile,
                suffixes=suffixes,
                user_id=interaction.user.id,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
            )
        except UserInputError as exc:
            await reply_error(interaction, str(exc))
            return
        await self._start_reply(interaction, request)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        parent = await self._find(interaction, job_id)
        if parent is None:
            return
        request = reroll_request(
            parent.request, parent_job=parent.id, user_id=interaction.user.id, channel_id=interaction.channel_id
        )
        await self._start_reply(interaction, request)

    # --- shared plumbing ---

    async def _find(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        job = await self.engine.store.get_job(job_id)
        if job is None or job.request.guild_id != interaction.guild_id:
            await reply_error(interaction, "This grid is no longer known to the bot; start a new /imagine.")
            return None
        return job

    async def _start_reply(self, interaction: discord.Interaction, request: JobRequest) -> None:
        """Refine and re-roll: acknowledge silently, then post a new grid replying to the button's message."""
        job = await self.engine.create(request)
        await interaction.response.defer()
        parent = interaction.message
        if parent is None:  # pragma: no cover - buttons always come with their message
            raise RuntimeError("component interaction without a message")
        message = await parent.reply(
            f"{interaction.user.mention} {status_text(job, None)}", allowed_mentions=NO_MENTIONS
        )
        mention = interaction.user.mention

        async def edit(**fields: Any) -> discord.Message:
            if "content" in fields and fields["content"] is not None:
                fields["content"] = f"{mention} {fields['content']}"
            elif "content" in fields:
                fields["content"] = mention
            return await message.edit(**fields, allowed_mentions=NO_MENTIONS)

        self._follow(job, edit, interaction.filesize_limit)

    def _follow(self, job: Job, edit: Edit, upload_limit: int) -> None:
        task = asyncio.create_task(self._deliver(job, edit, upload_limit), name=f"seedgrid-deliver-{job.id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job: Job, edit: Edit, upload_limit: int) -> None:
        """Queue the job, show its position and progress on one message, then replace it with the grid."""
        try:
            handle = self.engine.start(job)
        except ExecutorClosedError:
            await edit(content=f"**{headline(job)}**\n❌ The bot is shutting down; try again in a minute.")
            return
        editor = StatusEditor(lambda text: edit(content=text), self.settings.discord.progress_interval)
        try:
            async for event in handle.events():
                if not isinstance(event, Done | Failed | Cancelled):
                    editor.update(status_text(job, event))
        finally:
            await editor.close()
        outcome = await handle.wait()
        try:
            if isinstance(outcome, Done):
                await self._post_grid(job, outcome.result, edit, upload_limit)
            elif isinstance(outcome, Failed):
                await edit(content=f"**{headline(job)}**\n❌ {outcome.reason}")
            else:
                await edit(content=f"**{headline(job)}**\n🚫 Cancelled.")
        except discord.HTTPException:
            log.exception("could not deliver job %d", job.id)

    async def _post_grid(self, job: Job, result: JobResult, edit: Edit, upload_limit: int) -> None:
        image, ext = result.grid_png, "png"
        if len(image) > upload_limit:  # re-encode off the loop to fit the upload limit
            image, ext = await asyncio.to_thread(_reencode, image, upload_limit)
            log.info("job %d grid re-encoded as %s to fit %d bytes", job.id, ext, upload_limit)
        embed, file = grid_message(job, result, model=self.model_name, image=image, ext=ext)
        message = await edit(content=None, embed=embed, attachments=[file], view=grid_view(job, len(result.tiles)))
        await self.engine.store.set_message(job.id, message.id)


def _reencode(png: bytes, limit: int) -> tuple[bytes, str]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return encode_to_fit(image.convert("RGB"), limit)


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(ImagineCog(bot))
