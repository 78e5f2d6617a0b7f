"""One place where every unexpected error of an application command ends up.

Members get a short private answer; the traceback goes to the log, never to Discord.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from .imagine import reply_error

if TYPE_CHECKING:
    from .client import SeedgridBot

log = logging.getLogger(__name__)


class ErrorsCog(commands.Cog, name="Errors"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self._previous = bot.tree.on_error

    async def cog_load(self) -> None:
        self.bot.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]

    async def cog_unload(self) -> None:
        self.bot.tree.on_error = self._previous  # type: ignore[method-assign]

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.TransformerError | app_commands.CheckFailure):
            message = str(error) or "That input is not valid here."
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = f"Slow down: try again in {error.retry_after:.0f} s."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error("command /%s failed", command, exc_info=error)
            message = "Something went wrong; it has been logged for the bot's admin."
        try:
            await reply_error(interaction, message)
        except discord.HTTPException:
            log.warning("could not tell the member about the error")


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(ErrorsCog(bot))
