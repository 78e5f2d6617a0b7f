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
from bot.texts import Text, text
from cogs.imagine._access import role_ids
from cogs.languages import described, locale_of
from cogs.replies import reply, reply_error
from cogs.settings import DEFAULT_CHOICES, shown, value_choices

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)


class PreferencesCog(commands.GroupCog, group_name="preferences", group_description=described("prefs.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        super().__init__()

    @app_commands.command(name="show", description=described("prefs.show.description"))
    async def show(self, interaction: discord.Interaction) -> None:
        mine = await self.engine.preferences(interaction.user.id)
        locale = locale_of(interaction)
        lines = [
            text("prefs.line.set", locale=locale, name=text(f"choice.{name}", locale=locale), value=shown(value))
            if (value := getattr(mine, name)) is not None
            else text("prefs.line.unset", locale=locale, name=text(f"choice.{name}", locale=locale))
            for name in DEFAULTS
        ]
        private = await self.engine.wants_private(interaction.user.id)
        lines.append(text("prefs.line.private.on" if private else "prefs.line.private.off", locale=locale))
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="private", description=described("prefs.private.description"))
    @app_commands.describe(value=described("prefs.private.value"))
    async def private(self, interaction: discord.Interaction, value: bool) -> None:
        """Results shown to the member only, where the server allows it (``/settings private``)."""
        await self.engine.set_private(interaction.user.id, value)
        allowed = self.engine.server(interaction.guild_id).private
        await reply(
            interaction,
            Text("prefs.private.off" if not value else "prefs.private.on" if allowed else "prefs.private.on_not_here"),
        )

    @app_commands.command(name="set", description=described("prefs.set.description"))
    @app_commands.describe(name=described("settings.default.name"), value=described("prefs.set.value"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def set_(self, interaction: discord.Interaction, name: app_commands.Choice[str], value: str) -> None:
        try:
            parsed = parse_default(name.value, value, self.engine.models)
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self.engine.set_preference(interaction.user.id, name.value, parsed)
        await reply(interaction, Text("prefs.set", name=Text(f"choice.{name.value}"), value=shown(parsed)))

    @set_.autocomplete("value")
    async def _values(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return value_choices(self.engine.models, getattr(interaction.namespace, "name", None), current)

    @app_commands.command(name="reset", description=described("prefs.reset.description"))
    @app_commands.describe(name=described("settings.default.name"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def reset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        await self.engine.set_preference(interaction.user.id, name.value, None)
        await reply(interaction, Text("prefs.reset", name=Text(f"choice.{name.value}")))


class QuotaCog(commands.Cog, name="Quota"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine

    @app_commands.command(name="quota", description=described("quota.description"))
    @app_commands.guild_only()
    async def quota(self, interaction: discord.Interaction) -> None:
        quota = await self.engine.quota(interaction.guild_id, interaction.user.id, role_ids(interaction))
        locale = locale_of(interaction)
        resets = f"<t:{int(quota.resets_at)}:R>"
        if quota.allowance is None:
            lines = [text("quota.unlimited", locale=locale)]
        else:
            lines = [text("quota.left", locale=locale, left=quota.left, allowance=quota.allowance, resets=resets)]
        if quota.gpu_allowance is None:
            lines.append(text("quota.gpu_unlimited", locale=locale))
        else:
            left, allowance = quota.gpu_left, quota.gpu_allowance
            lines.append(text("quota.gpu_left", locale=locale, left=left, allowance=allowance, resets=resets))
        await reply(interaction, "\n".join(lines))


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(PreferencesCog(bot))
    await bot.add_cog(QuotaCog(bot))
