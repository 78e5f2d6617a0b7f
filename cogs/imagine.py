"""/imagine, the numbered tile buttons, the refine modal and re-roll.

Top to bottom: the buttons (DynamicItems, so they work after a restart), the modal, the cog.
Every handler answers Discord first (defer or modal) and waits on the engine afterwards.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from bot.executor import (
    TERMINAL,
    Done,
    ExecutorClosedError,
    Failed,
    Interrupted,
    Preview,
    QueueFullError,
    Terminal,
)
from bot.grid import encode_to_fit
from bot.jobs import Job, JobKind, JobRequest, JobResult, Tile
from bot.preview import PREVIEW_EXTENSION
from bot.requests import (
    UserInputError,
    imagine_request,
    parse_suffixes,
    refine_request,
    reroll_request,
)
from bot.safety import apply_policy

from ._access import Gatekeeper
from ._command import imagine_command
from ._delivery import Delivery
from ._messages import NO_MENTIONS, Status, StatusEditor, grid_message, headline, status_text

if TYPE_CHECKING:
    from .client import SeedgridBot

log = logging.getLogger(__name__)

RESTARTING = "The bot is restarting; this job will run when it is back."
UNKNOWN_INTERACTION = 10062
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit for a server without boosts; interactions tell the exact figure."""


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
    except discord.NotFound as exc:
        if exc.code != UNKNOWN_INTERACTION:
            await _report(interaction, exc)
        else:  # nothing can be sent to the member any more
            log.warning("interaction %d expired before it was answered (over Discord's 3 s)", interaction.id)
    except Exception as exc:
        await _report(interaction, exc)


async def _report(interaction: discord.Interaction, exc: Exception) -> None:
    custom_id = interaction.data.get("custom_id") if interaction.data else "?"
    log.error("button %s failed", custom_id, exc_info=exc)
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


class CancelButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"sg:cancel:(?P<job>[0-9]{1,18})"):
    """On a waiting or running job's message: the author or a moderator stops it."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"sg:cancel:{job_id}")
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> CancelButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _guarded(interaction, _cog(interaction).cancel(interaction, self.job_id))


def cancel_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id))
    return view


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
        self._command = imagine_command(
            self.settings.generation, self.imagine, direct_messages=self.settings.access.direct_messages
        )
        self._deliveries: set[asyncio.Task[None]] = set()
        self._cancelled_by: dict[int, str] = {}
        self.gate = Gatekeeper(self.settings, safety_checker=self._checker_runs)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(TileButton, RerollButton, CancelButton)
        self.bot.tree.add_command(self._command)
        await self._recover()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(TileButton, RerollButton, CancelButton)
        self.bot.tree.remove_command(self._command.name)
        for task in list(self._deliveries):
            task.cancel()

    def _checker_runs(self) -> bool:
        """Whether the safety checker may flag this job's tiles: as the loaded model (or the live workers)
        say; with no worker connected yet, as the config says (so nothing slips through unhidden)."""
        info = self.engine.info
        if info is None:
            return self.settings.safety.checker
        return bool(getattr(info, "safety_checker", False))

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
        denied = self.gate.where(interaction)
        if denied:
            await reply_error(interaction, denied)
            return
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
        request = replace(request, policy=self.gate.policy(interaction.channel))
        job = await self._admit(interaction, request, request.prompt, request.negative)
        if job is None:
            return
        try:
            response = await interaction.response.defer(thinking=True)
        except discord.HTTPException:
            await self.engine.abandon(job, "the interaction could not be acknowledged")
            raise
        message_id = response.message_id if response is not None else None
        if message_id is not None:
            await self.engine.store.set_message(job.id, message_id)
        self._follow(Delivery(job, self._channel(job), interaction=interaction, reply_to=message_id))
        await self._tell_what_was_cut(interaction, request.prompt)

    async def _tell_what_was_cut(self, interaction: discord.Interaction, prompt: str) -> None:
        """The text encoder reads 77 tokens; say privately which words it will not see."""
        cut = await self.engine.prompt_overflow(prompt)
        if cut:
            await interaction.followup.send(
                f"ℹ️ The model reads only the first {self.engine.max_prompt_tokens} tokens of a prompt; "
                f"this part was ignored: {discord.utils.escape_markdown(cut[:1500])}",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )

    async def open_refine(self, interaction: discord.Interaction, job_id: int, tile_index: int) -> None:
        """Button N: the modal must be the first response, so only a quick store read comes before it."""
        found = await self._find(interaction, job_id)
        if found is None:
            return
        denied = self.gate.where(interaction) or self.gate.may_refine(interaction, found.request.user_id)
        if denied:
            await reply_error(interaction, denied)
            return
        tile = await self.engine.store.get_tile(job_id, tile_index)
        if tile is None:
            await reply_error(interaction, f"Job {job_id} has no tile {tile_index}.")
            return
        await interaction.response.send_modal(RefineModal(self, found, tile_index, tile))

    async def refine(
        self, interaction: discord.Interaction, parent: Job, tile_index: int, tile: Tile, text: str
    ) -> None:
        if await self._find(interaction, parent.id) is None:  # deleted while the form was open
            return
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
        await self._start_reply(interaction, request, *suffixes)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        parent = await self._find(interaction, job_id)
        if parent is None:
            return
        denied = self.gate.where(interaction) or self.gate.may_refine(interaction, parent.request.user_id)
        if denied:
            await reply_error(interaction, denied)
            return
        request = reroll_request(
            parent.request, parent_job=parent.id, user_id=interaction.user.id, channel_id=interaction.channel_id
        )
        await self._start_reply(interaction, request, request.prompt, request.negative)

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Cancel button: for the job's author and for members who may manage messages."""
        job = await self._find(interaction, job_id)
        if job is None:
            return
        allowed = interaction.user.id == job.request.user_id or interaction.permissions.manage_messages
        if not allowed:
            await reply_error(interaction, "Only the member who started this job, or a moderator, can cancel it.")
            return
        if not self.engine.cancel(job_id):
            await reply_error(interaction, "This job is no longer waiting or running.")
            return
        self.note_cancel(job_id, interaction.user.display_name)
        await interaction.response.defer()
        log.info("job %d cancelled by %s (%d)", job_id, interaction.user, interaction.user.id)

    def note_cancel(self, job_id: int, by: str) -> None:
        """Remember who cancelled a job, for the message that says so."""
        self._cancelled_by[job_id] = by

    # --- shared plumbing ---

    async def _find(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        job = await self.engine.store.get_job(job_id)
        if job is None or job.request.guild_id != interaction.guild_id:
            await reply_error(interaction, "This grid is no longer known to the bot; start a new /imagine.")
            return None
        return job

    async def _admit(self, interaction: discord.Interaction, request: JobRequest, *texts: str) -> Job | None:
        """Check the words and the member's rate, then store the job before acknowledging.

        A refusal (blocklist, rate limit, full queue, shutdown) is said privately and stores nothing.
        """
        refusal = self.gate.blocked(*texts) or self.gate.rate(interaction.user.id)
        if refusal:
            await reply_error(interaction, refusal)
            return None
        try:
            return await self.engine.create(request)
        except (QueueFullError, ExecutorClosedError) as exc:
            self.gate.refund(interaction.user.id)
            await reply_error(interaction, str(exc))
            return None

    def _channel(self, job: Job) -> discord.PartialMessageable:
        channel_id = job.request.channel_id
        if channel_id is None:  # pragma: no cover - every Discord job records its channel
            raise RuntimeError(f"job {job.id} has no channel")
        return self.bot.get_partial_messageable(channel_id, guild_id=job.request.guild_id)

    async def _start_reply(self, interaction: discord.Interaction, request: JobRequest, *texts: str) -> None:
        """Refine and re-roll: acknowledge silently, then post a new grid replying to the button's message."""
        request = replace(request, policy=self.gate.policy(interaction.channel))
        job = await self._admit(interaction, request, *texts)
        if job is None:
            return
        try:
            await interaction.response.defer()
        except discord.HTTPException:
            await self.engine.abandon(job, "the interaction could not be acknowledged")
            raise
        parent = interaction.message
        if parent is None:  # pragma: no cover - buttons always come with their message
            raise RuntimeError("component interaction without a message")
        message = await parent.reply(
            f"{interaction.user.mention} {status_text(job, None)}",
            view=cancel_view(job),
            allowed_mentions=NO_MENTIONS,
        )
        await self.engine.store.set_message(job.id, message.id)
        self._follow(Delivery(job, self._channel(job), message=message))

    async def _recover(self) -> None:
        """Run again, from their stored seeds, the jobs a previous run accepted but never posted."""
        jobs = await self.engine.undelivered()
        for job in jobs:
            if job.request.channel_id is None:  # not a Discord job (nothing to post it to)
                log.warning("job %d has no channel to be delivered to; leaving it", job.id)
                await self.engine.store.mark_delivered(job.id, None)
                continue
            channel = self._channel(job)
            if job.request.parent_job is None:  # a slash command: its token is gone, reply to its message
                delivery = Delivery(job, channel, reply_to=job.message_id)
            else:  # refine / re-roll: the bot's own reply message is edited in place
                message = None if job.message_id is None else channel.get_partial_message(job.message_id)
                delivery = Delivery(job, channel, message=message)
            self._follow(delivery)
        if jobs:
            log.info("recovered %d unfinished job(s) from the store: %s", len(jobs), [j.id for j in jobs])

    def _follow(self, delivery: Delivery) -> None:
        job = delivery.job
        task = asyncio.create_task(self._deliver(delivery), name=f"seedgrid-deliver-{job.id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def drain_deliveries(self) -> None:
        """Wait for every delivery in flight (used at shutdown, before the connection closes)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    async def _deliver(self, delivery: Delivery) -> None:
        """Queue the job, show its position, progress and previews on one message, then post the outcome."""
        job = delivery.job
        try:
            handle = self.engine.start(job)
        except ExecutorClosedError:
            await self._edit_safely(delivery, content=f"**{headline(job)}**\n⏸ {RESTARTING}", view=None)
            return
        view = cancel_view(job)

        async def show(status: Status) -> None:
            fields: dict[str, Any] = {"content": status.text, "view": view}
            if status.preview is not None:
                fields["attachments"] = [
                    discord.File(io.BytesIO(status.preview), filename=f"preview.{PREVIEW_EXTENSION}")
                ]
            await delivery.edit(**fields)

        editor = StatusEditor(show, self.settings.discord.progress_interval)
        status = Status(status_text(job, None))
        try:
            async for event in handle.events():
                if isinstance(event, Preview):
                    if (
                        job.request.policy == "allow"
                    ):  # a preview is never checked: no previews where tiles may be hidden
                        status = Status(status.text, event.image)
                elif not isinstance(event, TERMINAL):
                    status = Status(status_text(job, event), status.preview)
                else:
                    break
                editor.update(status)
        finally:
            await editor.close()
        await self._post_outcome(delivery, await handle.wait())

    async def _post_outcome(self, delivery: Delivery, outcome: Terminal) -> None:
        """The grid, or why there is none; then the job is recorded as delivered."""
        job = delivery.job
        if isinstance(outcome, Interrupted):  # the job stays stored and runs again at the next start
            await self._edit_safely(delivery, content=f"**{headline(job)}**\n⏸ {RESTARTING}")
            return
        try:
            if isinstance(outcome, Done):
                message = await self._post_grid(delivery, outcome.result)
            elif isinstance(outcome, Failed):
                message = await self._final(delivery, content=f"**{headline(job)}**\n❌ {outcome.reason}")
            else:
                who = self._cancelled_by.pop(job.id, None)
                note = f"🚫 Cancelled by {discord.utils.escape_markdown(who)}." if who else "🚫 Cancelled."
                message = await self._final(delivery, content=f"**{headline(job)}**\n{note}")
        except (discord.Forbidden, discord.NotFound):
            log.exception("job %d cannot be delivered (no access to its channel or message); giving up", job.id)
            message = None
        except discord.HTTPException:
            log.exception("job %d could not be delivered now; it will be retried at the next start", job.id)
            return
        await self.engine.store.mark_delivered(job.id, None if message is None else message.id)

    async def _final(self, delivery: Delivery, **fields: Any) -> discord.Message:
        """The last edit of a job's message: no more Cancel button, no preview."""
        fields.setdefault("view", None)
        fields.setdefault("attachments", [])
        return await delivery.edit(**fields)

    async def _edit_safely(self, delivery: Delivery, **fields: Any) -> discord.Message | None:
        try:
            return await self._final(delivery, **fields)
        except discord.HTTPException:
            log.exception("could not update the message of job %d", delivery.job.id)
            return None

    async def _post_grid(self, delivery: Delivery, result: JobResult) -> discord.Message:
        job = delivery.job
        # the channel's policy for flagged tiles, and the upload limit, applied off the event loop
        publication = await asyncio.to_thread(apply_policy, result, job.request.policy)
        upload_limit = delivery.interaction.filesize_limit if delivery.interaction else DEFAULT_UPLOAD_LIMIT
        image, ext = publication.image, publication.filename_ext
        if len(image) > upload_limit:
            image, ext = await asyncio.to_thread(_reencode, image, upload_limit)
            log.info("job %d grid re-encoded as %s to fit %d bytes", job.id, ext, upload_limit)
        embed, file = grid_message(
            job,
            result,
            model=self.model_name,
            image=image,
            ext=ext,
            spoiler=publication.spoiler,
            flagged=publication.flagged if job.request.policy != "allow" else (),
            hidden=job.request.policy == "blur",
        )
        return await self._final(
            delivery, content=None, embed=embed, attachments=[file], view=grid_view(job, len(result.tiles))
        )


def _reencode(png: bytes, limit: int) -> tuple[bytes, str]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return encode_to_fit(image.convert("RGB"), limit)


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(ImagineCog(bot))
