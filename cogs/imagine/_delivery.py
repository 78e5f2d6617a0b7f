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
* A job recovered after a restart posts a new reply to its original message. The reply carries
  a nonce with ``enforce_nonce``, so if the bot dies between posting and recording the delivery,
  the retry returns the same message instead of posting a second one.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import discord

from bot.diffusion.preview import PREVIEW_EXTENSION
from bot.engine import TERMINAL, Cancelled, Done, Engine, Event, Failed, Interrupted, Preview, Terminal
from bot.imaging.flagged import apply_policy
from bot.imaging.grid import encode_to_fit
from bot.jobs import Job, JobResult
from bot.texts import text
from cogs.imagine._messages import cancelled_text, grid_message, job_line, status_text
from cogs.imagine._status import Status, StatusEditor
from cogs.imagine._views import cancel_view, grid_view
from cogs.replies import NO_MENTIONS

log = logging.getLogger(__name__)

EXPIRED_TOKEN_CODES = {50027, 10015}  # Invalid Webhook Token, Unknown Webhook
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit for a server without boosts; interactions tell the exact figure."""


def _token_expired(exc: discord.HTTPException) -> bool:
    return exc.code in EXPIRED_TOKEN_CODES or exc.status == 401


class Delivery:
    """The one message a job shows itself on, and the listener the engine tells the job's events."""

    def __init__(
        self,
        engine: Engine,
        job: Job,
        channel: discord.abc.Messageable,
        *,
        progress_interval: float,
        model_id: str,
        interaction: discord.Interaction | None = None,
        message: discord.Message | discord.PartialMessage | None = None,
        reply_to: int | None = None,
    ) -> None:
        self.engine = engine
        self.job = job
        self.channel = channel
        self.interaction = interaction
        self.message = message
        self.reply_to = reply_to
        self.mention = f"<@{job.request.user_id}>"
        self.model_id = model_id  # the config's, for when no worker has said what it runs
        self._view = cancel_view(job)
        self._status = Status(status_text(job, None))
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
            self._status = Status(status_text(self.job, event), self._status.preview)
        self._editor.update(self._status)

    async def _show(self, status: Status) -> None:
        fields: dict[str, Any] = {"content": status.text, "view": self._view}
        if status.preview is not None:
            fields["attachments"] = [discord.File(io.BytesIO(status.preview), filename=f"preview.{PREVIEW_EXTENSION}")]
        await self.edit(**fields)

    async def _post_outcome(self, outcome: Terminal) -> None:
        """The grid, or why there is none; then the job is recorded as delivered."""
        job = self.job
        if isinstance(outcome, Interrupted):  # the job stays stored and runs again at the next start
            try:
                await self._final(content=job_line(job, text("job.restarting")))
            except discord.HTTPException:
                log.exception("could not update the message of job %d", job.id)
            return
        try:
            if isinstance(outcome, Done):
                message = await self._post_grid(outcome.result)
            elif isinstance(outcome, Failed):
                message = await self._final(content=job_line(job, text("job.failed", reason=outcome.reason)))
            else:
                assert isinstance(outcome, Cancelled)
                message = await self._final(content=cancelled_text(job, outcome.by))
        except (discord.Forbidden, discord.NotFound):
            log.exception("job %d cannot be delivered (no access to its channel or message); giving up", job.id)
            message = None
        except discord.HTTPException:
            log.exception("job %d could not be delivered now; it will be retried at the next start", job.id)
            return
        await self.engine.delivered(job.id, None if message is None else message.id)

    async def _post_grid(self, result: JobResult) -> discord.Message:
        job = self.job
        # the channel's policy for flagged tiles, and the upload limit, applied off the event loop
        publication = await asyncio.to_thread(apply_policy, result, job.request.policy)
        upload_limit = self.interaction.filesize_limit if self.interaction else DEFAULT_UPLOAD_LIMIT
        image, ext = publication.image, publication.filename_ext
        if len(image) > upload_limit:
            image, ext = await asyncio.to_thread(_reencode, image, upload_limit)
            log.info("job %d grid re-encoded as %s to fit %d bytes", job.id, ext, upload_limit)
        embed, file = grid_message(
            job,
            result,
            model=self._model_name(),
            image=image,
            ext=ext,
            spoiler=publication.spoiler,
            flagged=publication.flagged if job.request.policy != "allow" else (),
            hidden=job.request.policy == "blur",
        )
        return await self._final(content=None, embed=embed, attachments=[file], view=grid_view(job, len(result.tiles)))

    def _model_name(self) -> str:
        info = self.engine.info
        return self.model_id if info is None else info.model

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
            log.info("job %d: interaction token expired, delivering as a channel message", self.job.id)
            self.interaction = None
        fields["content"] = f"{self.mention} {fields['content']}" if fields.get("content") else self.mention
        if self.message is not None:
            self.message = await self.message.edit(**fields, allowed_mentions=NO_MENTIONS)
            return self.message
        self.message = await self._post(fields)
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
