"""Where a job's status and outcome go, and how they still get there after 15 minutes or a restart.

* A slash command's job edits the interaction's original response while its token lives
  (15 minutes). Once Discord refuses the token, the job is delivered as a channel message by
  the bot, replying to that original response and naming the member.
* Refine and re-roll jobs edit the bot's own reply message, which has no time limit.
* A job recovered after a restart posts a new reply to its original message. The reply carries
  a nonce with ``enforce_nonce``, so if the bot dies between posting and recording the delivery,
  the retry returns the same message instead of posting a second one.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.jobs import Job

from ._messages import NO_MENTIONS

log = logging.getLogger(__name__)

EXPIRED_TOKEN_CODES = {50027, 10015}  # Invalid Webhook Token, Unknown Webhook


def _token_expired(exc: discord.HTTPException) -> bool:
    return exc.code in EXPIRED_TOKEN_CODES or exc.status == 401


class Delivery:
    """The one message a job shows itself on. ``edit`` takes ``Message.edit``'s keywords."""

    def __init__(
        self,
        job: Job,
        channel: discord.abc.Messageable,
        *,
        interaction: discord.Interaction | None = None,
        message: discord.Message | discord.PartialMessage | None = None,
        reply_to: int | None = None,
    ) -> None:
        self.job = job
        self.channel = channel
        self.interaction = interaction
        self.message = message
        self.reply_to = reply_to
        self.mention = f"<@{job.request.user_id}>"

    @property
    def message_id(self) -> int | None:
        return None if self.message is None else self.message.id

    async def edit(self, **fields: Any) -> discord.Message:
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
