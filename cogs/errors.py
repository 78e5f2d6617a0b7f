"""One place where every unexpected error of an application command ends up.

Members get a short private answer; the traceback goes to the log, never to Discord.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.texts import Text
from cogs.replies import reply_error, report_failure

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

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
            message: Text | str = str(error) or Text("input.invalid_option")
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = Text("refused.cooldown", seconds=error.retry_after)
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            await report_failure(interaction, f"command /{command}", error)
            return
        try:
            await reply_error(interaction, message)
        except discord.HTTPException:
            log.warning("could not tell the member about the error")


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(ErrorsCog(bot))
