"""/settings show | default | reset | nsfw: a server's own defaults and policies, for members with Manage Server.

The TOML file stays the place for what only the machine's owner decides (token, models, devices,
limits); a server chooses, within the file's bounds, what its members get when they leave an option
empty and what happens to flagged tiles in each channel. Values are checked with the file's rules
(:mod:`bot.rules.server`), stored, applied at once, and every change is logged with who made it.
``default_permissions`` hides the group from everyone else (Server Settings → Integrations changes who sees it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import Catalogue
from bot.inputs import UserInputError
from bot.rules.server import DEFAULTS, parse_default
from bot.texts import text
from cogs.replies import reply, reply_error

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)

DEFAULT_CHOICES = [app_commands.Choice(name=name, value=name) for name in DEFAULTS]
POLICY_CHOICES = [app_commands.Choice(name=name, value=name) for name in ("allow", "blur", "spoiler", "file")]
AUTOCOMPLETE_LIMIT = 25


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings", group_description=text("settings.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.settings = bot.settings
        super().__init__()

    @app_commands.command(name="show", description=text("settings.show.description"))
    async def show(self, interaction: discord.Interaction) -> None:
        await reply(interaction, self._report(interaction.guild_id))

    @app_commands.command(name="default", description=text("settings.default.description"))
    @app_commands.describe(name=text("settings.default.name"), value=text("settings.default.value"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def default(self, interaction: discord.Interaction, name: app_commands.Choice[str], value: str) -> None:
        guild_id = _guild(interaction)
        try:
            parsed = parse_default(name.value, value, self.engine.models)
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        await self.engine.set_server_default(guild_id, name.value, parsed, by=interaction.user.id)
        self._audit(interaction, f"default {name.value} = {parsed!r}")
        await reply(interaction, text("settings.set", name=name.value, value=shown(parsed)))

    @default.autocomplete("value")
    async def _values(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return value_choices(self.engine.models, getattr(interaction.namespace, "name", None), current)

    @app_commands.command(name="reset", description=text("settings.reset.description"))
    @app_commands.describe(name=text("settings.default.name"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def reset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        await self.engine.set_server_default(_guild(interaction), name.value, None, by=interaction.user.id)
        self._audit(interaction, f"default {name.value} reset")
        await reply(interaction, text("settings.reset", name=name.value))

    @app_commands.command(name="nsfw", description=text("settings.nsfw.description"))
    @app_commands.describe(channel=text("settings.nsfw.channel"), policy=text("settings.nsfw.policy"))
    @app_commands.choices(policy=POLICY_CHOICES)
    async def nsfw(
        self, interaction: discord.Interaction, channel: discord.TextChannel, policy: app_commands.Choice[str]
    ) -> None:
        chosen = None if policy.value == "file" else policy.value
        await self.engine.set_channel_policy(_guild(interaction), channel.id, chosen, by=interaction.user.id)
        self._audit(interaction, f"nsfw #{channel.id} = {policy.value}")
        if chosen is None:
            await reply(interaction, text("settings.nsfw.reset", channel=channel.id))
        else:
            await reply(interaction, text("settings.nsfw.set", channel=channel.id, policy=chosen))

    @app_commands.command(name="quota", description=text("settings.quota.description"))
    @app_commands.describe(role=text("settings.quota.role"), images=text("settings.quota.images"))
    async def quota(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        images: app_commands.Range[int, 0, 100_000] | None = None,
    ) -> None:
        await self.engine.set_quota(_guild(interaction), role.id, images, by=interaction.user.id)
        self._audit(interaction, f"quota @{role.id} = {images}")
        if images is None:
            await reply(interaction, text("settings.quota.removed", role=role.id))
        else:
            await reply(interaction, text("settings.quota.set", role=role.id, images=images))

    # --- helpers ---

    def _report(self, guild_id: int | None) -> str:
        """Every default with its value and where it comes from, then the flagged-tile policies."""
        server = self.engine.server(guild_id)
        gen = self.settings.generation
        default = self.engine.models.default
        from_file: dict[str, object] = {
            "model": default.name,
            "steps": gen.default_steps,
            "guidance": gen.default_guidance,
            "size": default.sizes[0].name if not gen.sizes else gen.sizes[0].name,
            "negative": gen.default_negative or None,
        }
        lines = []
        for name in DEFAULTS:
            mine = getattr(server, name)
            if mine is not None:
                lines.append(text("settings.line.server", name=name, value=shown(mine)))
            elif from_file[name] is not None:
                lines.append(text("settings.line.file", name=name, value=shown(from_file[name])))
            else:
                lines.append(text("settings.line.model", name=name))
        safety = self.settings.safety
        lines.append(text("settings.line.flagged", flagged=safety.flagged, nsfw=safety.nsfw_channels))
        lines += [text("settings.line.channel", channel=c, policy=p) for c, p in sorted(server.nsfw.items())]
        lines += [text("settings.line.quota", role=r, images=n) for r, n in sorted(server.quotas.items())]
        return "\n".join(lines)

    def _audit(self, interaction: discord.Interaction, change: str) -> None:
        log.info(
            "settings of guild %s by %s (%d): %s", interaction.guild_id, interaction.user, interaction.user.id, change
        )


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:  # pragma: no cover - the group is guild_only
        raise RuntimeError("/settings outside a server")
    return interaction.guild_id


def value_choices(models: Catalogue, name: str | None, typed: str) -> list[app_commands.Choice[str]]:
    """Autocomplete of a default's value: the models and sizes there are; nothing to suggest for the others."""
    if name == "model":
        options = [(preset.label, preset.name) for preset in models]
    elif name == "size":
        options = [(size.label, size.name) for size in models.size_names]
    else:
        return []
    matching = [(label, value) for label, value in options if typed.lower() in label.lower()]
    return [app_commands.Choice(name=label[:100], value=value) for label, value in matching][:AUTOCOMPLETE_LIMIT]


def shown(value: object) -> str:
    """A value as admins read it: numbers plainly, text in a code span (no markdown, no mentions)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return "`" + value.replace("`", "'") + "`"
    return str(value)


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(SettingsCog(bot))
