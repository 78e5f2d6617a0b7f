"""/imagine, and what the buttons under a grid do: refine a tile, re-roll, cancel.

Every handler reads top to bottom the same way: check who and where (:mod:`._access`), turn what
the member typed into a request (:mod:`bot.inputs`), have the engine admit and store the job,
answer Discord (defer, or the modal) within its 3 seconds, then hand the job to the engine with a
:class:`~._delivery.Delivery` that shows it on one message until its grid is posted.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot.engine import BackendClosedError, QueueFullError
from bot.engine.models import ModelPreset
from bot.imaging.recipe import Recipe
from bot.inputs import (
    Origin,
    UserInputError,
    choose_model,
    imagine_request,
    model_notes,
    parse_suffixes,
    refine_request,
    reroll_request,
    upscale_request,
    vary_request,
)
from bot.jobs import Job, JobRequest, Tile
from bot.rules.server import ServerSettings, chosen_model, member_options
from bot.texts import Text, text
from cogs.imagine._access import Gatekeeper, role_ids
from cogs.imagine._command import imagine_command
from cogs.imagine._delivery import Delivery, RetryPolicy, find_posted
from cogs.imagine._messages import status_text
from cogs.imagine._status import DISCORD_ERRORS
from cogs.imagine._views import BUTTONS, RefineModal, cancel_view
from cogs.languages import job_locale, locale_of
from cogs.replies import NO_MENTIONS, reply_error

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)


class ImagineCog(commands.Cog, name="Imagine"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.engine = bot.engine
        self._command = imagine_command(
            self.settings.generation,
            self.engine.models,
            self.imagine,
            direct_messages=self.settings.access.direct_messages,
        )
        self.gate = Gatekeeper(self.settings, safety_checker=self._checker_runs)
        self._retry = RetryPolicy(give_up_after=self.settings.discord.delivery_retry_for)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*BUTTONS)
        self.bot.tree.add_command(self._command)
        await self._recover()

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*BUTTONS)
        self.bot.tree.remove_command(self._command.name)

    def _checker_runs(self) -> bool:
        """Whether the safety checker may flag this job's tiles: as the loaded model (or the live workers)
        say; with no worker connected yet, as the config says (so nothing slips through unhidden)."""
        info = self.engine.info
        return self.settings.safety.checker if info is None else info.safety_checker

    # --- /imagine ---

    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: str,
        negative: str | None,
        seed: int | None,
        steps: int | None,
        guidance: float | None,
        size: str | None,
        model: str | None = None,
    ) -> None:
        server = self.engine.server(interaction.guild_id)
        denied = self.gate.where(interaction, server)
        if denied:
            await reply_error(interaction, denied)
            return
        # what the member left empty: their /preferences, then this server's /settings, then the model's own
        layers = (await self.engine.preferences(interaction.user.id), server)
        try:
            preset = choose_model(self.engine.models, model or chosen_model(layers, self.engine.models))
            # new names: the member's own negative and guidance are what model_notes speaks of
            filled_steps, filled_guidance, filled_size, filled_negative = member_options(
                layers, preset, steps=steps, guidance=guidance, size=size, negative=negative
            )
            request = imagine_request(
                preset,
                prompt=prompt,
                negative=filled_negative,
                seed=seed,
                steps=filled_steps,
                guidance=filled_guidance,
                size=filled_size,
                **_origin(interaction),
            )
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        if not await self.start_command(interaction, request, request.prompt, request.negative):
            return
        notes = [
            note.render(locale_of(interaction))
            for note in model_notes(preset, request, negative=negative, guidance=guidance)
        ]
        await self._tell_privately(interaction, request, notes)

    async def start_command(self, interaction: discord.Interaction, request: JobRequest, *texts: str) -> bool:
        """A slash command's job (/imagine, /reproduce): admitted and stored, acknowledged at once ("thinking"),
        then queued; its progress and grid replace the acknowledgement. False when refused (said privately)."""
        server = self.engine.server(interaction.guild_id)
        private = server.private and await self.engine.wants_private(interaction.user.id)
        job = await self._admit(interaction, replace(request, **_origin(interaction)), *texts, private=private)
        if job is None:
            return False
        await self._acknowledge(interaction, job)
        return True

    async def _acknowledge(self, interaction: discord.Interaction, job: Job) -> None:
        """A stored job's interaction answered at once ("thinking"; ephemeral for a job shown to its member
        only): that answer is the job's message, edited while its token lives, then the job is queued."""
        try:
            response = await interaction.response.defer(thinking=True, ephemeral=job.request.private)
        except discord.HTTPException:
            await self.engine.abandon(job, "the interaction could not be acknowledged")
            raise
        message_id = response.message_id if response is not None else None
        if message_id is not None:
            await self.engine.set_message(job.id, message_id, reply_token=interaction.token)
        self.engine.start(job, self._delivery(job, interaction=interaction, reply_to=message_id))

    async def _tell_privately(self, interaction: discord.Interaction, request: JobRequest, notes: list[str]) -> None:
        """What of the member's input the model will not use, in one private message: the words its text
        encoder cuts (it reads a fixed number of tokens), options it ignores."""
        cut = await self.engine.prompt_overflow(request.prompt, request.model)
        if cut:
            tokens = self.engine.max_prompt_tokens(request.model)
            cut = discord.utils.escape_markdown(cut[:1500])
            notes.insert(0, text("job.cut_prompt", locale=locale_of(interaction), tokens=tokens, cut=cut))
        if notes:
            await interaction.followup.send("\n".join(notes), ephemeral=True, allowed_mentions=NO_MENTIONS)

    # --- the buttons ---

    async def open_refine(self, interaction: discord.Interaction, job_id: int, tile_index: int) -> None:
        """Button N: the modal must be the first response, so only a quick store read comes before it."""
        usable = await self._usable_grid(interaction, job_id)
        if usable is None:
            return
        found, server = usable
        tile = await self.engine.tile(job_id, tile_index)
        if tile is None:
            await reply_error(interaction, Text("refused.unknown_tile", job=job_id, tile=tile_index))
            return
        suggestions = self.settings.refine.suggestions if server.suggestions is None else server.suggestions
        modal = RefineModal(self, found, tile_index, tile, suggestions, locale=locale_of(interaction))
        await interaction.response.send_modal(modal)

    async def refine(
        self, interaction: discord.Interaction, parent: Job, tile_index: int, tile: Tile, typed: str
    ) -> None:
        """The refine form was sent: one new tile per suffix, all on the parent tile's seed."""
        if await self._find(interaction, parent.id) is None:  # deleted while the form was open
            return
        try:
            suffixes = parse_suffixes(typed, self.settings.refine)
            request = refine_request(
                parent.request,
                parent_job=parent.id,
                tile_index=tile_index,
                tile=tile,
                suffixes=suffixes,
                **_origin(interaction),
            )
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self._start_reply(interaction, request, *suffixes, parent=parent)

    async def reroll(self, interaction: discord.Interaction, job_id: int) -> None:
        usable = await self._usable_grid(interaction, job_id)
        if usable is None:
            return
        parent, _ = usable
        request = reroll_request(parent.request, parent_job=parent.id, **_origin(interaction))
        await self._start_reply(interaction, request, request.prompt, request.negative, parent=parent)

    async def upscale(self, interaction: discord.Interaction, job_id: int, tile_index: int) -> None:
        """U1-U4: the tile alone, larger, posted as a reply with Vary and Refine buttons."""
        found = await self._derive_from(interaction, job_id, tile_index)
        if found is None:
            return
        parent, source = found
        try:
            request = upscale_request(
                parent.request,
                source,
                preset=self._preset(parent),
                settings=self.settings.upscale,
                parent_job=parent.id,
                tile_index=tile_index,
                upscaler=self.engine.models.upscaler,
                **_origin(interaction),
            )
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self._start_reply(interaction, request, request.prompt, request.negative, parent=parent)

    async def vary(self, interaction: discord.Interaction, job_id: int, tile_index: int, *, strong: bool) -> None:
        """Vary (subtle or strong): four new seeds drawn from the tile, a new grid as a reply."""
        found = await self._derive_from(interaction, job_id, tile_index)
        if found is None:
            return
        parent, source = found
        try:
            request = vary_request(
                parent.request,
                source,
                preset=self._preset(parent),
                strength=self.settings.vary.strong if strong else self.settings.vary.subtle,
                parent_job=parent.id,
                tile_index=tile_index,
                **_origin(interaction),
            )
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self._start_reply(interaction, request, request.prompt, request.negative, parent=parent)

    async def _derive_from(
        self, interaction: discord.Interaction, job_id: int, tile_index: int
    ) -> tuple[Job, Recipe] | None:
        """The job and the recipe of its tile an upscale or a variation starts from, or a private refusal."""
        usable = await self._usable_grid(interaction, job_id)
        if usable is None:
            return None
        parent, _ = usable
        source = await self.engine.tile_recipe(parent, tile_index)
        if source is None:
            await reply_error(interaction, Text("refused.unknown_tile", job=job_id, tile=tile_index))
            return None
        return parent, source

    def _preset(self, job: Job) -> ModelPreset:
        preset = self.engine.models.get(job.request.model)
        assert preset is not None  # checked by _model_gone
        return preset

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """The Cancel button: for the job's author and for members who may manage messages."""
        job = await self._find(interaction, job_id)
        if job is None:
            return
        denied = self.gate.may_cancel(interaction, job.request.user_id)
        if denied:
            await reply_error(interaction, denied)
            return
        if not self.engine.cancel(job_id, by=interaction.user.display_name):
            await reply_error(interaction, Text("refused.not_running"))
            return
        await interaction.response.defer()
        log.info("job %d cancelled by %s (%d)", job_id, interaction.user, interaction.user.id)

    # --- shared steps ---

    async def _find(self, interaction: discord.Interaction, job_id: int) -> Job | None:
        """The job a button names, if it is known and belongs to this server."""
        job = await self.engine.job(job_id)
        if job is None or job.request.guild_id != interaction.guild_id:
            await reply_error(interaction, Text("refused.unknown_grid"))
            return None
        return job

    async def _usable_grid(self, interaction: discord.Interaction, job_id: int) -> tuple[Job, ServerSettings] | None:
        """The grid a button names and this server's settings, when the member may use its buttons here
        (where, who, and the grid's model still offered); else None, the refusal said privately."""
        job = await self._find(interaction, job_id)
        if job is None:
            return None
        server = self.engine.server(interaction.guild_id)
        denied = (
            self.gate.where(interaction, server)
            or self.gate.may_refine(interaction, job.request.user_id, server)
            or self._model_gone(job)
        )
        if denied:
            await reply_error(interaction, denied)
            return None
        return job, server

    def _model_gone(self, job: Job) -> Text | None:
        """Refine and re-roll use the grid's own model: a refusal when it is no longer configured."""
        if self.engine.models.get(job.request.model) is None:
            return Text("input.model_gone", model=job.request.model)
        return None

    def _model_label(self, job: Job) -> str:
        """The job's model as members read it ("name (family)"); its stored id when no longer configured."""
        preset = self.engine.models.get(job.request.model)
        return preset.label if preset is not None else job.request.model_id or job.request.model

    async def _admit(
        self, interaction: discord.Interaction, request: JobRequest, *texts: str, private: bool = False
    ) -> Job | None:
        """Check the words, the member's daily allowance and rate, then store the job before acknowledging.

        A refusal (blocklist, allowance, rate limit, full queue, shutdown) is said privately and stores nothing.
        ``private``: the job is shown to its member only (stored with it, so it stays so after a restart).
        """
        server = self.engine.server(interaction.guild_id)
        refusal = self.gate.blocked(*texts, server=server) or await self._over_quota(interaction, request)
        refusal = refusal or self.gate.rate(interaction.user.id)
        if refusal:
            if self.bot.metrics is not None:  # the engine counts its own refusals (limits, pause, restart)
                self.bot.metrics.job_refused(request, refusal.key)
            await reply_error(interaction, refusal)
            return None
        policy = self.gate.policy(interaction.channel, server)
        request = replace(request, policy=policy, locale=locale_of(interaction), private=private)
        try:
            return await self.engine.create(request)
        except (QueueFullError, BackendClosedError) as exc:
            self.gate.refund(interaction.user.id)
            await reply_error(interaction, exc.text)
            return None

    async def _over_quota(self, interaction: discord.Interaction, request: JobRequest) -> Text | None:
        """The server's daily allowance for the member's roles (``/settings quota``), if this job would pass it."""
        quota = await self.engine.quota(interaction.guild_id, interaction.user.id, role_ids(interaction))
        resets = f"<t:{int(quota.resets_at)}:R>"
        if quota.left is not None and len(request.tiles()) > quota.left:
            return Text("refused.quota", allowance=quota.allowance, resets=resets)
        # a job's GPU time is not known before it runs: refused once what is used reaches the allowance
        if quota.gpu_left is not None and quota.gpu_left <= 0:
            return Text("refused.gpu_quota", allowance=quota.gpu_allowance, resets=resets)
        return None

    async def _start_reply(
        self, interaction: discord.Interaction, request: JobRequest, *texts: str, parent: Job
    ) -> None:
        """Refine and re-roll: acknowledge silently, then post a new grid replying to the button's message.

        Where the server allows private results, a job made from a private grid, or by a member who wants
        theirs private, is shown to that member only: on the interaction's own ephemeral answer instead."""
        server = self.engine.server(interaction.guild_id)
        private = server.private and (parent.request.private or await self.engine.wants_private(interaction.user.id))
        job = await self._admit(interaction, request, *texts, private=private)
        if job is None:
            return
        if private:
            await self._acknowledge(interaction, job)
            return
        try:
            await interaction.response.defer()
        except discord.HTTPException:
            await self.engine.abandon(job, "the interaction could not be acknowledged")
            raise
        shown_on = interaction.message
        if shown_on is None:  # pragma: no cover - buttons always come with their message
            raise RuntimeError("component interaction without a message")
        # a private grid's message is its member's alone (ephemeral): a public result cannot reply to it
        post = shown_on.channel.send if parent.request.private else shown_on.reply
        reply_to = None if parent.request.private else shown_on.id
        try:
            locale = job_locale(self.bot, job)
            message = await post(
                f"{interaction.user.mention} {status_text(job, None, locale)}",
                view=cancel_view(job, locale),
                allowed_mentions=NO_MENTIONS,
            )
        except DISCORD_ERRORS as exc:  # the job runs anyway: its delivery posts the reply when it can
            log.warning("job %d: its status reply could not be posted (%s); posting it with the outcome", job.id, exc)
            self.engine.start(job, self._delivery(job, reply_to=reply_to))
            return
        await self.engine.set_message(job.id, message.id)
        self.engine.start(job, self._delivery(job, message=message))

    def _delivery(
        self,
        job: Job,
        *,
        interaction: discord.Interaction | None = None,
        message: discord.Message | discord.PartialMessage | None = None,
        reply_to: int | None = None,
    ) -> Delivery:
        channel_id = job.request.channel_id
        if channel_id is None:  # pragma: no cover - every Discord job records its channel
            raise RuntimeError(f"job {job.id} has no channel")
        return Delivery(
            self.engine,
            job,
            self.bot.get_partial_messageable(channel_id, guild_id=job.request.guild_id),
            progress_interval=self.settings.discord.progress_interval,
            model=self._model_label(job),
            retry=self._retry,
            interaction=interaction,
            message=message,
            reply_to=reply_to,
            metrics=self.bot.metrics,
            locale=job_locale(self.bot, job),
            direct=partial(self.bot.create_dm, discord.Object(job.request.user_id)),
        )

    async def _recover(self) -> None:
        """Run again, from their stored seeds, the jobs a previous run accepted but never posted."""
        jobs = await self.engine.undelivered()
        for job in jobs:
            if job.request.channel_id is None:  # not a Discord job (nothing to post it to)
                log.warning("job %d has no channel to be delivered to; leaving it", job.id)
                await self.engine.delivered(job.id, None)
                continue
            if job.delivery_started_at is not None:  # the crash came while posting: is the grid out there?
                posted = await find_posted(self.bot, job)
                if posted is not None:
                    log.info(
                        "job %d: its grid is already on Discord (message %d); recorded, not posted again",
                        job.id,
                        posted.id,
                    )
                    await self.engine.delivered(job.id, posted.id)
                    continue
            if job.request.parent_job is None:  # a slash command: its token is gone, reply to its message
                delivery = self._delivery(job, reply_to=job.message_id)
            else:  # refine / re-roll: the bot's own reply message is edited in place
                channel = self.bot.get_partial_messageable(job.request.channel_id, guild_id=job.request.guild_id)
                message = None if job.message_id is None else channel.get_partial_message(job.message_id)
                delivery = self._delivery(job, message=message)
            self.engine.start(job, delivery)
        if jobs:
            log.info("recovered %d unfinished job(s) from the store: %s", len(jobs), [j.id for j in jobs])


def _origin(interaction: discord.Interaction) -> Origin:
    return Origin(user_id=interaction.user.id, guild_id=interaction.guild_id, channel_id=interaction.channel_id)
