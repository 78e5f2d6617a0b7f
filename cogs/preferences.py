"""/preferences show | set | reset (a member's own defaults) and /quota (what is left of today's allowance).

A member's preferences fill what they leave empty in /imagine, before the server's defaults
(``/settings``) and the model's own; they are checked with the same rules as the server's, stored
per member, and show in every grid's embed as its ordinary parameters, so a recipe stays complete.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.inputs import UserInputError
from bot.rules.server import DEFAULTS, parse_default
from bot.texts import text
from cogs.replies import reply, reply_error
from cogs.settings import DEFAULT_CHOICES, shown, value_choices

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)


class PreferencesCog(commands.GroupCog, group_name="preferences", group_description=text("prefs.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        super().__init__()

    @app_commands.command(name="show", description=text("prefs.show.description"))
    async def show(self, interaction: discord.Interaction) -> None:
        mine = await self.engine.preferences(interaction.user.id)
        lines = [
            text("prefs.line.set", name=name, value=shown(getattr(mine, name)))
            if getattr(mine, name) is not None
            else text("prefs.line.unset", name=name)
            for name in DEFAULTS
        ]
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="set", description=text("prefs.set.description"))
    @app_commands.describe(name=text("settings.default.name"), value=text("prefs.set.value"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def set_(self, interaction: discord.Interaction, name: app_commands.Choice[str], value: str) -> None:
        try:
            parsed = parse_default(name.value, value, self.engine.models)
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self.engine.set_preference(interaction.user.id, name.value, parsed)
        await reply(interaction, text("prefs.set", name=name.value, value=shown(parsed)))

    @set_.autocomplete("value")
    async def _values(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return value_choices(self.engine.models, getattr(interaction.namespace, "name", None), current)

    @app_commands.command(name="reset", description=text("prefs.reset.description"))
    @app_commands.describe(name=text("settings.default.name"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def reset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        await self.engine.set_preference(interaction.user.id, name.value, None)
        await reply(interaction, text("prefs.reset", name=name.value))


class QuotaCog(commands.Cog, name="Quota"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine

    @app_commands.command(name="quota", description=text("quota.description"))
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        roles = [role.id for role in getattr(interaction.user, "roles", [])]
        quota = await self.engine.quota(interaction.guild_id, interaction.user.id, roles)
        if quota.allowance is None:
            await reply(interaction, text("quota.unlimited"))
            return
        resets = f"<t:{int(quota.resets_at)}:R>"
        await reply(interaction, text("quota.left", left=quota.left, allowance=quota.allowance, resets=resets))


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(PreferencesCog(bot))
    await bot.add_cog(QuotaCog(bot))
