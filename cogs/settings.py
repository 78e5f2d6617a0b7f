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
from bot.rules.server import (
    BUTTONS,
    DEFAULTS,
    MAX_BLOCKLIST,
    MAX_ENTRY,
    MAX_LISTED,
    parse_blocklist_entry,
    parse_default,
    parse_suggestions,
)
from bot.texts import ENGLISH, Text, text
from cogs.languages import described, locale_of
from cogs.replies import reply, reply_error

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

log = logging.getLogger(__name__)

DEFAULT_CHOICES = [app_commands.Choice(name=described(f"choice.{name}"), value=name) for name in DEFAULTS]
POLICY_CHOICES = [
    app_commands.Choice(name=described(f"choice.{name}"), value=name) for name in ("allow", "blur", "spoiler", "file")
]
AUTOCOMPLETE_LIMIT = 25
MESSAGE_LIMIT = 2000
"""Discord's limit on a message's content: a long list is cut short, saying how many more there are."""
BLOCKLIST_ACTIONS = [app_commands.Choice(name=described(f"choice.{a}"), value=a) for a in ("add", "remove", "list")]
LIST_ACTIONS = [app_commands.Choice(name=described(f"choice.{a}"), value=a) for a in ("add", "remove", "clear")]
BUTTON_CHOICES = [app_commands.Choice(name=described(f"choice.{w}"), value=w) for w in (*BUTTONS, "file")]


@app_commands.default_permissions(manage_guild=True)
@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings", group_description=described("settings.group")):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.settings = bot.settings
        super().__init__()

    @app_commands.command(name="show", description=described("settings.show.description"))
    async def show(self, interaction: discord.Interaction) -> None:
        await reply(interaction, self._report(interaction.guild_id, locale_of(interaction)))

    @app_commands.command(name="default", description=described("settings.default.description"))
    @app_commands.describe(name=described("settings.default.name"), value=described("settings.default.value"))
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
        await reply(interaction, Text("settings.set", name=Text(f"choice.{name.value}"), value=shown(parsed)))

    @default.autocomplete("value")
    async def _values(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return value_choices(self.engine.models, getattr(interaction.namespace, "name", None), current)

    @app_commands.command(name="reset", description=described("settings.reset.description"))
    @app_commands.describe(name=described("settings.default.name"))
    @app_commands.choices(name=DEFAULT_CHOICES)
    async def reset(self, interaction: discord.Interaction, name: app_commands.Choice[str]) -> None:
        await self.engine.set_server_default(_guild(interaction), name.value, None, by=interaction.user.id)
        self._audit(interaction, f"default {name.value} reset")
        await reply(interaction, Text("settings.reset", name=Text(f"choice.{name.value}")))

    @app_commands.command(name="nsfw", description=described("settings.nsfw.description"))
    @app_commands.describe(channel=described("settings.nsfw.channel"), policy=described("settings.nsfw.policy"))
    @app_commands.choices(policy=POLICY_CHOICES)
    async def nsfw(
        self, interaction: discord.Interaction, channel: discord.TextChannel, policy: app_commands.Choice[str]
    ) -> None:
        chosen = None if policy.value == "file" else policy.value
        await self.engine.set_channel_policy(_guild(interaction), channel.id, chosen, by=interaction.user.id)
        self._audit(interaction, f"nsfw #{channel.id} = {policy.value}")
        if chosen is None:
            await reply(interaction, Text("settings.nsfw.reset", channel=channel.id))
        else:
            await reply(interaction, Text("settings.nsfw.set", channel=channel.id, policy=Text(f"choice.{chosen}")))

    @app_commands.command(name="quota", description=described("settings.quota.description"))
    @app_commands.describe(
        role=described("settings.quota.role"),
        images=described("settings.quota.images"),
        gpu_seconds=described("settings.quota.gpu_seconds"),
    )
    async def quota(
        self,
        interaction: discord.Interaction,
        role: discord.Role,
        images: app_commands.Range[int, 0, 100_000] | None = None,
        gpu_seconds: app_commands.Range[int, 0, 1_000_000] | None = None,
    ) -> None:
        """The role's whole allowance: an option left empty means no limit of that kind from this role."""
        await self.engine.set_quota(
            _guild(interaction), role.id, images, gpu_seconds=gpu_seconds, by=interaction.user.id
        )
        self._audit(interaction, f"quota @{role.id} = {images} images, {gpu_seconds} GPU-seconds")
        locale = locale_of(interaction)
        lines = []
        if images is not None:
            lines.append(text("settings.quota.set", locale=locale, role=role.id, images=images))
        if gpu_seconds is not None:
            lines.append(text("settings.quota.gpu_set", locale=locale, role=role.id, seconds=gpu_seconds))
        await reply(interaction, "\n".join(lines) or Text("settings.quota.removed", role=role.id))

    @app_commands.command(name="blocklist", description=described("settings.blocklist.description"))
    @app_commands.describe(action=described("settings.blocklist.action"), entry=described("settings.blocklist.entry"))
    @app_commands.choices(action=BLOCKLIST_ACTIONS)
    async def blocklist(
        self, interaction: discord.Interaction, action: app_commands.Choice[str], entry: str | None = None
    ) -> None:
        """This server's own blocklist entries, matched like the file's (on top of them)."""
        guild_id = _guild(interaction)
        mine = self.engine.server(guild_id).blocklist
        count = len(self.settings.safety.blocklist)
        if action.value == "list":
            if not mine:
                await reply(interaction, Text("settings.blocklist.empty", count=count))
                return
            locale = locale_of(interaction)  # the list is cut to fit beside the sentence in the member's language
            listed = clipped(
                [shown(e) for e in mine], text("settings.blocklist.list", locale=locale, count=count, entries="")
            )
            await reply(interaction, Text("settings.blocklist.list", count=count, entries=listed))
            return
        if entry is None:
            await reply_error(interaction, Text("settings.blocklist.need_entry"))
            return
        if action.value == "remove":
            typed = entry.strip()
            if typed not in mine:
                await reply_error(interaction, Text("settings.blocklist.missing", entry=shown(typed[:MAX_ENTRY])))
                return
            await self.engine.set_server_policy(
                guild_id, "blocklist", tuple(e for e in mine if e != typed) or None, by=interaction.user.id
            )
            self._audit(interaction, f"blocklist - {typed!r}")
            await reply(interaction, Text("settings.blocklist.removed", entry=shown(typed)))
            return
        try:
            parsed = parse_blocklist_entry(entry)
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        if parsed not in mine:
            if len(mine) >= MAX_BLOCKLIST:
                await reply_error(interaction, Text("settings.blocklist.full", max=MAX_BLOCKLIST))
                return
            await self.engine.set_server_policy(guild_id, "blocklist", (*mine, parsed), by=interaction.user.id)
            self._audit(interaction, f"blocklist + {parsed!r}")
        await reply(interaction, Text("settings.blocklist.added", entry=shown(parsed)))

    @blocklist.autocomplete("entry")
    async def _entries(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """Removing: this server's entries, as typed so far."""
        if getattr(interaction.namespace, "action", None) != "remove":
            return []
        mine = self.engine.server(interaction.guild_id).blocklist
        matching = [e for e in mine if current.lower() in e.lower()]
        return [app_commands.Choice(name=e[:100], value=e) for e in matching if len(e) <= 100][:AUTOCOMPLETE_LIMIT]

    @app_commands.command(name="channels", description=described("settings.channels.description"))
    @app_commands.describe(action=described("settings.channels.action"), channel=described("settings.channels.channel"))
    @app_commands.choices(action=LIST_ACTIONS)
    async def channels(
        self,
        interaction: discord.Interaction,
        action: app_commands.Choice[str],
        channel: discord.TextChannel | None = None,
    ) -> None:
        """The channels the bot works in here; empty: every channel the file allows."""
        await self._edit_list(interaction, "channels", action.value, None if channel is None else channel.id)

    @app_commands.command(name="roles", description=described("settings.roles.description"))
    @app_commands.describe(action=described("settings.roles.action"), role=described("settings.roles.role"))
    @app_commands.choices(action=LIST_ACTIONS)
    async def roles(
        self, interaction: discord.Interaction, action: app_commands.Choice[str], role: discord.Role | None = None
    ) -> None:
        """The roles a member needs here (one of them); empty: as the file says."""
        await self._edit_list(interaction, "roles", action.value, None if role is None else role.id)

    @app_commands.command(name="buttons", description=described("settings.buttons.description"))
    @app_commands.describe(who=described("settings.buttons.who"))
    @app_commands.choices(who=BUTTON_CHOICES)
    async def buttons(self, interaction: discord.Interaction, who: app_commands.Choice[str]) -> None:
        chosen = None if who.value == "file" else who.value
        await self.engine.set_server_policy(_guild(interaction), "buttons", chosen, by=interaction.user.id)
        self._audit(interaction, f"buttons = {who.value}")
        if chosen is None:
            await reply(interaction, Text("settings.buttons.reset"))
        else:
            shown_who = Text("settings.who.author" if chosen == "author" else "settings.who.anyone")
            await reply(interaction, Text("settings.buttons.set", who=shown_who))

    @app_commands.command(name="suggestions", description=described("settings.suggestions.description"))
    @app_commands.describe(lines=described("settings.suggestions.lines"))
    async def suggestions(self, interaction: discord.Interaction, lines: str | None = None) -> None:
        parsed = None
        if lines is not None:
            try:
                parsed = parse_suggestions(lines, self.settings.refine)
            except UserInputError as exc:
                await reply_error(interaction, exc.text)
                return
        await self.engine.set_server_policy(_guild(interaction), "suggestions", parsed, by=interaction.user.id)
        self._audit(interaction, f"suggestions = {parsed!r}")
        if parsed is None:
            await reply(interaction, Text("settings.suggestions.reset"))
        else:
            listed = " · ".join(shown(line) for line in parsed)
            await reply(interaction, Text("settings.suggestions.set", lines=listed))

    @app_commands.command(name="private", description=described("settings.private.description"))
    @app_commands.describe(allowed=described("settings.private.allowed"))
    async def private(self, interaction: discord.Interaction, allowed: bool) -> None:
        await self.engine.set_server_policy(
            _guild(interaction), "private", True if allowed else None, by=interaction.user.id
        )
        self._audit(interaction, f"private results allowed = {allowed}")
        await reply(interaction, Text("settings.private.on" if allowed else "settings.private.off"))

    async def _edit_list(self, interaction: discord.Interaction, name: str, action: str, ident: int | None) -> None:
        """Add to, remove from, or clear the server's list of channels or roles."""
        guild_id = _guild(interaction)
        listed: tuple[int, ...] = getattr(self.engine.server(guild_id), name)
        chan = name == "channels"
        key = "channel" if chan else "role"
        if action == "clear":
            await self.engine.set_server_policy(guild_id, name, None, by=interaction.user.id)
            self._audit(interaction, f"{name} cleared")
            await reply(interaction, Text("settings.channels.cleared" if chan else "settings.roles.cleared"))
            return
        if ident is None:
            await reply_error(
                interaction, Text("settings.channels.need_channel" if chan else "settings.roles.need_role")
            )
            return
        if action == "add":
            if ident not in listed and len(listed) >= MAX_LISTED:
                await reply_error(
                    interaction, Text("settings.channels.full" if chan else "settings.roles.full", max=MAX_LISTED)
                )
                return
            changed = listed if ident in listed else (*listed, ident)
        else:
            changed = tuple(i for i in listed if i != ident)
        await self.engine.set_server_policy(guild_id, name, changed or None, by=interaction.user.id)
        self._audit(interaction, f"{name} {'+' if action == 'add' else '-'} {ident}")
        done = Text(
            ("settings.channels.added" if chan else "settings.roles.added")
            if action == "add"
            else ("settings.channels.removed" if chan else "settings.roles.removed"),
            **{key: ident},
        )
        await reply(interaction, done)

    # --- helpers ---

    def _report(self, guild_id: int | None, locale: str | None = None) -> str:
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
            shown_name = text(f"choice.{name}", locale=locale)
            if mine is not None:
                lines.append(text("settings.line.server", locale=locale, name=shown_name, value=shown(mine)))
            elif from_file[name] is not None:
                value = shown(from_file[name])
                lines.append(text("settings.line.file", locale=locale, name=shown_name, value=value))
            else:
                lines.append(text("settings.line.model", locale=locale, name=shown_name))
        safety = self.settings.safety
        flagged, nsfw = (policy_name(p, locale) for p in (safety.flagged, safety.nsfw_channels))
        lines.append(text("settings.line.flagged", locale=locale, flagged=flagged, nsfw=nsfw))
        lines += [
            text("settings.line.channel", locale=locale, channel=c, policy=policy_name(p, locale))
            for c, p in sorted(server.nsfw.items())
        ]
        lines += [
            text("settings.line.quota", locale=locale, role=r, images=n) for r, n in sorted(server.quotas.items())
        ]
        lines += self._policy_lines(guild_id, locale)
        return clipped(lines, "", locale=locale, separator="\n")

    def _policy_lines(self, guild_id: int | None, locale: str | None) -> list[str]:
        """GPU allowances and the further policies (bot.rules.server.POLICY_NAMES), each saying where it comes
        from: the file, or this server."""
        server, access = self.engine.server(guild_id), self.settings.access
        lines = [
            text("settings.line.quota_gpu", locale=locale, role=r, seconds=s)
            for r, s in sorted(server.gpu_quotas.items())
        ]
        lines.append(text("settings.line.blocklist.file", locale=locale, count=len(self.settings.safety.blocklist)))
        if server.blocklist:
            entries = clipped([shown(e) for e in server.blocklist], "", locale=locale)[: MESSAGE_LIMIT // 2]
            lines.append(text("settings.line.blocklist.server", locale=locale, entries=entries))
        anywhere = text("settings.line.everywhere", locale=locale)
        for name, mark, filed in (("channels", "#", access.channels), ("roles", "@&", access.roles)):
            listed = ", ".join(f"<{mark}{i}>" for i in filed) or anywhere
            chan = name == "channels"
            lines.append(
                text(
                    "settings.line.channels.file" if chan else "settings.line.roles.file",
                    locale=locale,
                    **{name: listed},
                )
            )
            mine = getattr(server, name)
            if mine:
                listed = clipped([f"<{mark}{i}>" for i in mine], "", locale=locale)
                lines.append(
                    text(
                        "settings.line.channels.server" if chan else "settings.line.roles.server",
                        locale=locale,
                        **{name: listed},
                    )
                )
        author = (server.buttons or access.refine) == "author"
        who = text("settings.who.author" if author else "settings.who.anyone", locale=locale)
        mine = server.buttons is not None
        lines.append(
            text("settings.line.buttons.server" if mine else "settings.line.buttons.file", locale=locale, who=who)
        )
        mine = server.suggestions is not None
        suggestions = self.settings.refine.suggestions if server.suggestions is None else server.suggestions
        listed = " · ".join(shown(s) for s in suggestions) or "—"
        lines.append(
            text(
                "settings.line.suggestions.server" if mine else "settings.line.suggestions.file",
                locale=locale,
                lines=listed,
            )
        )
        private = server.private
        lines.append(text("settings.line.private.server" if private else "settings.line.private.file", locale=locale))
        return lines

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


def clipped(items: list[str], around: str, *, locale: str | None = None, separator: str = ", ") -> str:
    """``items`` joined, as many as fit in one message beside ``around`` (the rest of it), then how many more."""
    budget = MESSAGE_LIMIT - len(around) - 40
    kept: list[str] = []
    for item in items:
        if len(separator.join([*kept, item])) > budget:
            return separator.join(kept) + " " + text("settings.list.more", locale=locale, count=len(items) - len(kept))
        kept.append(item)
    return separator.join(kept)


def policy_name(policy: str, locale: str | None) -> str:
    """A flagged-tile policy (allow, blur, spoiler) as the member's language names it."""
    return text(f"choice.{policy}", locale=locale) if f"choice.{policy}" in ENGLISH else policy


def shown(value: object) -> str:
    """A value as admins read it: numbers plainly, text in a code span (no markdown, no mentions)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return "`" + value.replace("`", "'") + "`"
    return str(value)


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(SettingsCog(bot))
