"""How the bot answers a member privately, for every cog: one format, never a mention."""

from __future__ import annotations

import logging

import discord

from bot.texts import Text, rendered, text
from cogs.languages import locale_of

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


async def reply_error(interaction: discord.Interaction, message: Text | str) -> None:
    """Tell only this member, in their language, what went wrong, whether or not the interaction was answered yet."""
    body = text("error.prefix", locale=locale_of(interaction), message=message)
    if interaction.response.is_done():
        await interaction.followup.send(body, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(body, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def reply(interaction: discord.Interaction, message: Text | str) -> None:
    """A private answer, in the member's language, to an interaction not answered yet."""
    body = rendered(message, locale_of(interaction))
    await interaction.response.send_message(body, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def report_failure(interaction: discord.Interaction, what: str, exc: BaseException) -> None:
    """An unexpected error: the traceback to the log, a short private apology to the member."""
    log.error("%s failed", what, exc_info=exc)
    try:
        await reply_error(interaction, Text("error.generic"))
    except discord.HTTPException:
        log.warning("could not tell the member about the error")
