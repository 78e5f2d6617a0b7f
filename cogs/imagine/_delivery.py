"""Delivery: a job's one message, from "Queued" through progress and previews to the posted grid.

The engine tells a :class:`Delivery` every event of its job (it is the job's listener):
queue positions, progress and previews are edited in at most every ``discord.progress_interval``
seconds; the outcome — the grid, or why there is none — is the last edit, and is then recorded
with the engine so that a restart never posts it again.

Where the message is, and how it still gets there after 15 minutes or a restart:

* A slash command's job edits the interaction's original response while its token lives
  (15 minutes). Once Discord refuses the token, the job is delivered as a channel message by
  the bot, replying to that original response and naming the member.
* Refine and re-roll jobs edit the bot's own reply message, which has no time limit.
* A private job (``/preferences private``, where the server allows it) is shown on the ephemeral
  response only. It is never posted in the channel: once the token has expired (or after a restart)
  its message moves to the member's direct messages; if Discord refuses those, the job fails with that
  reason in the admin's log, and its seeds and recipe stay in the database.
* A job recovered after a restart posts a new reply to its original message. The reply carries
  a nonce with ``enforce_nonce``, so if the bot dies between posting and recording the delivery,
  the retry returns the same message instead of posting a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import discord

from bot.diffusion.preview import PREVIEW_EXTENSION
from bot.engine import TERMINAL, Cancelled, Done, Engine, Event, Failed, Interrupted, Preview, Terminal
from bot.imaging.flagged import apply_policy
from bot.imaging.grid import encode_to_fit
from bot.jobs import Job, JobResult
from bot.monitoring.metrics import Metrics
from bot.texts import text
from cogs.imagine._messages import cancelled_text, grid_message, job_line, status_text
from cogs.imagine._status import DISCORD_ERRORS, Status, StatusEditor
from cogs.imagine._views import cancel_view, grid_view
from cogs.replies import NO_MENTIONS

log = logging.getLogger(__name__)

EXPIRED_TOKEN_CODES = {50027, 10015}  # Invalid Webhook Token, Unknown Webhook
UNKNOWN_MESSAGE = 10008

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit for a server without boosts; interactions tell the exact figure."""


def _token_expired(exc: discord.HTTPException) -> bool:
    return exc.code in EXPIRED_TOKEN_CODES or exc.status == 401


def _passing(exc: BaseException) -> bool:
    """Worth another try later: no answer at all (a connection failed, dropped or timed out), a 5xx, or a
    429 that outlasted discord.py's own retries."""
    return not isinstance(exc, discord.HTTPException) or exc.status >= 500 or exc.status == 429


def _retry_after(exc: BaseException) -> float:
    """What Discord asked to wait, when it said (a 429's ``Retry-After``)."""
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("Retry-After", 0)) if response is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return f"{exc.status} {exc.text}".strip()
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a finished job's post is retried while Discord has passing trouble."""

    give_up_after: float = 900.0
    first_delay: float = 0.5
    max_delay: float = 30.0


class Delivery:
    """The one message a job shows itself on, and the listener the engine tells the job's events."""

    def __init__(
        self,
        engine: Engine,
        job: Job,
        channel: discord.abc.Messageable,
        *,
        progress_interval: float,
        model: str,
        retry: RetryPolicy,
        interaction: discord.Interaction | None = None,
        message: discord.Message | discord.PartialMessage | None = None,
        reply_to: int | None = None,
        metrics: Metrics | None = None,
        locale: str | None = None,
        direct: Callable[[], Awaitable[discord.abc.Messageable]] | None = None,
    ) -> None:
        self.direct = direct  # opens the member's direct messages: where a private job goes once its token is gone
        self._dms_refused: discord.Forbidden | None = None  # the member takes no DMs from the bot: ask only once
        self.locale = locale  # the language of every line this job's message shows
        self.metrics = metrics  # counts progress edits and token-expiry fallbacks (None: metrics off)
        self.engine = engine
        self.job = job
        self.channel = channel
        self.interaction = interaction
        self.message = message
        self.reply_to = reply_to
        self.mention = f"<@{job.request.user_id}>"
        self.model = model  # what members read: the job's model, "name (family)"
        self.retry = retry
        self._view = cancel_view(job, locale)
        self._status = Status(status_text(job, None, locale))
        self._editor = StatusEditor(self._show, progress_interval)

    # --- the events of the job, in order ---

    async def __call__(self, event: Event) -> None:
        if isinstance(event, TERMINAL):
            await self._editor.close()  # no stale progress edit can overtake the outcome
            await self._post_outcome(event)
            return
        if isinstance(event, Preview):
            if self.job.request.policy == "allow":  # a preview is never checked: none where tiles may be hidden
                self._status = Status(self._status.text, event.image)
        else:
            self._status = Status(status_text(self.job, event, self.locale), self._status.preview)
        self._editor.update(self._status)

    async def _show(self, status: Status) -> None:
        fields: dict[str, Any] = {"content": status.text, "view": self._view}
        if status.preview is not None:
            fields["attachments"] = [discord.File(io.BytesIO(status.preview), filename=f"preview.{PREVIEW_EXTENSION}")]
        await self.edit(**fields)
        if self.metrics is not None:
            self.metrics.progress_edit(preview=status.preview is not None)

    async def _post_outcome(self, outcome: Terminal) -> None:
        """The grid, or why there is none; then the job is recorded as delivered.

        Discord's passing trouble (5xx, timeouts, dropped connections) is retried with backoff for
        up to ``discord.delivery_retry_for`` seconds; a definitive refusal (403, 404) or running out
        of time fails the job aloud: the admin's log says why and the job is not posted again.
        """
        job = self.job
        if isinstance(outcome, Interrupted):  # the job stays stored and runs again at the next start
            try:
                await self._final(content=job_line(job, text("job.restarting", locale=self.locale), self.locale))
            except discord.HTTPException:
                log.exception("could not update the message of job %d", job.id)
            return
        post: Callable[[], Awaitable[discord.Message]]
        if isinstance(outcome, Done):
            post = await self._grid_post(outcome.result)
            await self.engine.delivering(job.id)  # from here on, a restart looks on Discord before posting
        elif isinstance(outcome, Failed):
            content = job_line(job, text("job.failed", locale=self.locale, reason=outcome.reason), self.locale)
            post = partial(self._final, content=content)
        else:
            assert isinstance(outcome, Cancelled)
            post = partial(self._final, content=cancelled_text(job, outcome.by, self.locale))
        try:
            message = await self._retrying(post)
        except DISCORD_ERRORS as exc:
            await self._give_up(exc)
            return
        await self.engine.delivered(job.id, message.id)

    async def _give_up(self, exc: BaseException) -> None:
        """The outcome cannot be posted: the job fails, the admin's log says why, the member is told if possible."""
        job = self.job
        if _passing(exc):
            reason = f"Discord kept failing for {self.retry.give_up_after:.0f} s ({_describe(exc)})"
        else:
            reason = f"Discord refused it: {_describe(exc)}"
        if isinstance(exc, discord.Forbidden | discord.NotFound):
            where = "the member's direct messages" if job.request.private else "its channel or message"
            log.error("job %d cannot be delivered (no access to %s): %s; giving up", job.id, where, reason)
        else:
            log.error("job %d could not be delivered: %s; giving up", job.id, reason)
        await self.engine.undeliverable(job.id, reason)
        if isinstance(exc, discord.Forbidden | discord.NotFound):  # a text edit may still get through
            await self._say(text("job.undeliverable", locale=self.locale, reason=_describe(exc), job=job.id))

    async def _grid_post(self, result: JobResult) -> Callable[[], Awaitable[discord.Message]]:
        """Encode the grid once (off the event loop); the returned call posts it, as often as it must."""
        job = self.job
        # the channel's policy for flagged tiles, and the upload limit, applied off the event loop
        publication = await asyncio.to_thread(apply_policy, result, job.request.policy)
        upload_limit = self.interaction.filesize_limit if self.interaction else DEFAULT_UPLOAD_LIMIT
        image, ext = publication.image, publication.filename_ext
        if len(image) > upload_limit:
            image, ext = await asyncio.to_thread(_reencode, image, upload_limit)
            log.info("job %d grid re-encoded as %s to fit %d bytes", job.id, ext, upload_limit)
        preset = self.engine.models.get(job.request.model)
        image_to_image = preset is not None and preset.family.image_to_image

        async def post() -> discord.Message:
            embed, file = grid_message(  # a new file each attempt: a failed upload has read the last one
                job,
                result,
                model=self.model,
                image=image,
                ext=ext,
                spoiler=publication.spoiler,
                flagged=publication.flagged if job.request.policy != "allow" else (),
                hidden=job.request.policy == "blur",
                locale=self.locale,
            )
            view = grid_view(job, len(result.tiles), image_to_image=image_to_image, locale=self.locale)
            return await self._final(content=None, embed=embed, attachments=[file], view=view)

        return post

    async def _retrying(self, post: Callable[[], Awaitable[discord.Message]]) -> discord.Message:
        """``post()``, again after passing trouble, with exponential backoff and jitter, for a bounded time."""
        retry = self.retry
        deadline = time.monotonic() + retry.give_up_after
        delay = retry.first_delay
        attempt = 1
        while True:
            try:
                return await post()
            except discord.NotFound as exc:
                if exc.code != UNKNOWN_MESSAGE or (self.message is None and self.interaction is None):
                    raise
                # a moderator deleted the job's message: post the outcome as a new one instead
                log.warning("job %d: its message is gone; posting the outcome as a new message", self.job.id)
                self.interaction, self.message = None, None
            except DISCORD_ERRORS as exc:
                if not _passing(exc):
                    raise
                pause = max(min(delay, retry.max_delay) * random.uniform(0.5, 1.5), _retry_after(exc))
                if time.monotonic() + pause > deadline:
                    raise
                log.warning(
                    "job %d: delivery attempt %d failed (%s); retrying in %.1f s",
                    self.job.id,
                    attempt,
                    _describe(exc),
                    pause,
                )
                if attempt == 1:
                    await self._say(text("job.delivery_trouble", locale=self.locale))
                await asyncio.sleep(pause)
                delay *= 2
                attempt += 1

    async def _say(self, line: str) -> None:
        """Say why the outcome is late or missing on the job's message, if a small text edit gets through."""
        if self.message is None and (self.interaction is None or self.interaction.is_expired()):
            return  # no message to edit yet: a new one would take the outcome's nonce
        with contextlib.suppress(*DISCORD_ERRORS):
            await self.edit(content=job_line(self.job, line, self.locale), view=None, attachments=[])

    async def _final(self, **fields: Any) -> discord.Message:
        """The last edit of a job's message: no more Cancel button, no preview."""
        fields.setdefault("view", None)
        fields.setdefault("attachments", [])
        return await self.edit(**fields)

    # --- where the message is ---

    async def edit(self, **fields: Any) -> discord.Message:
        """Edit the job's message (``Message.edit``'s keywords), wherever it is by now."""
        if self.interaction is not None:
            if not self.interaction.is_expired():
                try:
                    return await self.interaction.edit_original_response(**fields, allowed_mentions=NO_MENTIONS)
                except discord.HTTPException as exc:
                    if not _token_expired(exc):
                        raise
            where = "in the member's direct messages" if self.job.request.private else "as a channel message"
            log.info("job %d: interaction token expired, delivering %s", self.job.id, where)
            self.interaction = None
            if self.metrics is not None:
                self.metrics.token_expired_delivery()
        if self.job.request.private:
            return await self._edit_direct(fields)
        fields["content"] = f"{self.mention} {fields['content']}" if fields.get("content") else self.mention
        if self.message is not None:
            self.message = await self.message.edit(**fields, allowed_mentions=NO_MENTIONS)
            return self.message
        self.message = await self._post(fields)
        return self.message

    async def _edit_direct(self, fields: dict[str, Any]) -> discord.Message:
        """A private job without its interaction: its message in the member's direct messages, never the channel."""
        if self.direct is None:  # pragma: no cover - the cog always says how to reach the member
            raise RuntimeError(f"private job {self.job.id} has no way to its member")
        if not isinstance(self.channel, discord.DMChannel):
            log.info("job %d: private, and its token is gone: delivering in the member's direct messages", self.job.id)
            self.channel = await self.direct()
            self.message, self.reply_to = None, None
        if self._dms_refused is not None:  # progress edits after a refusal: no new request, the same answer
            raise self._dms_refused
        note = text("job.private_by_dm", locale=self.locale)
        fields["content"] = f"{note}\n{fields['content']}" if fields.get("content") else note
        try:
            if self.message is not None:
                self.message = await self.message.edit(**fields, allowed_mentions=NO_MENTIONS)
            else:
                self.message = await self._post(fields)
        except discord.Forbidden as exc:
            self._dms_refused = exc
            raise
        return self.message

    async def _post(self, fields: dict[str, Any]) -> discord.Message:
        """A new reply to the job's original message (or a plain message if that is unknown)."""
        reference = None
        channel = self.channel
        if self.reply_to is not None and isinstance(channel, discord.abc.GuildChannel | discord.PartialMessageable):
            reference = discord.MessageReference(
                message_id=self.reply_to, channel_id=channel.id, fail_if_not_exists=False
            )
        options: dict[str, Any] = {
            "content": fields["content"],
            "embed": fields.get("embed"),
            "files": fields.get("attachments") or [],
            "nonce": f"seedgrid-{self.job.id}",
            "allowed_mentions": NO_MENTIONS,
        }
        if fields.get("view") is not None:
            options["view"] = fields["view"]
        if reference is not None:
            options["reference"] = reference
        return await self.channel.send(**options)


def _reencode(png: bytes, limit: int) -> tuple[bytes, str]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return encode_to_fit(image.convert("RGB"), limit)


# --- after a crash: is the outcome on Discord already? ---------------------------------------------

TOKEN_LIFETIME = 15 * 60 - 30
"""Seconds an interaction token can be used after it was stored (Discord's 15 minutes, with a margin)."""
HISTORY_LOOKBACK = 50
"""Messages after a job's original message searched for a grid posted as a channel reply."""


def carries_grid(message: discord.Message | discord.WebhookMessage, job_id: int) -> bool:
    """Whether a message is this job's posted grid: its number buttons name the job (``sg:tile:<job>:N``)."""
    prefix = f"sg:tile:{job_id}:"
    for row in message.components:
        for item in getattr(row, "children", [row]):
            custom_id = getattr(item, "custom_id", None)
            if isinstance(custom_id, str) and custom_id.startswith(prefix):
                return True
    return False


async def find_posted(client: discord.Client, job: Job) -> discord.Message | discord.WebhookMessage | None:
    """The message that already carries ``job``'s grid, if a crash came between posting it and recording it.

    Looked for where the delivery may have put it: the interaction's original response (through its
    token while it lives, else through the channel), the bot's own reply message (refine, re-roll),
    and the channel messages after the original one (a grid posted as a channel reply once the token
    had expired). Anything Discord will not show (no access, deleted) counts as not found.
    """
    channel_id = job.request.channel_id
    if channel_id is None:
        return None
    token_alive = job.reply_token is not None and time.time() - (job.reply_token_at or 0.0) < TOKEN_LIFETIME
    if token_alive and job.message_id is not None and client.application_id is not None:
        webhook = discord.Webhook.partial(client.application_id, job.reply_token or "", client=client)
        found = await _look(webhook.fetch_message(job.message_id), job.id)
        if found is not None:
            return found
    channel = client.get_partial_messageable(channel_id, guild_id=job.request.guild_id)
    if job.message_id is None:
        return None
    found = await _look(channel.fetch_message(job.message_id), job.id)
    if found is not None or job.request.parent_job is not None:  # refine / re-roll: edited in place, nowhere else
        return found
    try:
        async for message in channel.history(after=discord.Object(job.message_id), limit=HISTORY_LOOKBACK):
            if client.user is not None and message.author.id == client.user.id and carries_grid(message, job.id):
                return message
    except (discord.Forbidden, discord.NotFound):
        pass
    return None


async def _look(
    fetch: Awaitable[discord.Message | discord.WebhookMessage], job_id: int
) -> discord.Message | discord.WebhookMessage | None:
    try:
        message = await fetch
    except (discord.Forbidden, discord.NotFound, discord.HTTPException):
        return None
    return message if carries_grid(message, job_id) else None
