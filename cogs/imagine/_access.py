"""Who may use the bot where, how fast, and with which words: the checks every entry point runs first.

Each check returns ``None`` when the member may go on, or a :class:`~bot.texts.Text` to show them privately.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import discord

from bot.config import Settings
from bot.rules.blocklist import Blocklist
from bot.rules.ratelimit import TokenBucket
from bot.rules.server import ServerSettings
from bot.texts import Text


def role_ids(interaction: discord.Interaction) -> list[int]:
    """The ids of the member's roles here (none in direct messages)."""
    return [role.id for role in getattr(interaction.user, "roles", [])]


class Gatekeeper:
    def __init__(self, settings: Settings, *, safety_checker: Callable[[], bool]) -> None:
        self.settings = settings
        self.access = settings.access
        self.blocklist = Blocklist(settings.safety.blocklist)
        self.bucket = TokenBucket(self.access.rate_burst, self.access.rate_per_minute / 60.0)
        self.safety_checker = safety_checker

    def where(self, interaction: discord.Interaction, server: ServerSettings | None = None) -> Text | None:
        """Server, channel, role and direct-message rules from ``[access]``, then the server's own lists of
        channels and roles (``/settings channels|roles``), which can only narrow the file's: both must agree."""
        roles = role_ids(interaction)
        denied = self._file_where(interaction, roles)
        if denied is not None or server is None:
            return denied
        channels = (interaction.channel_id, getattr(interaction.channel, "parent_id", None))  # a thread's too
        missing = server.admits(channels, roles)
        if missing == "channel":
            return Text("refused.server_channel")
        if missing == "role":
            return Text("refused.server_role")
        return None

    def _file_where(self, interaction: discord.Interaction, roles: list[int]) -> Text | None:
        access = self.access
        if interaction.guild_id is None:
            return None if access.direct_messages else Text("refused.direct_messages")
        if access.guilds and interaction.guild_id not in access.guilds:
            return Text("refused.guild")
        if access.channels and interaction.channel_id not in access.channels:
            return Text("refused.channel")
        if access.roles and not set(roles).intersection(access.roles):
            return Text("refused.role")
        return None

    def blocked(self, *texts: str, server: ServerSettings | None = None) -> Text | None:
        """The file's blocklist, then the server's own entries (``/settings blocklist``) on top of it."""
        rule = self.blocklist.check(*texts)
        if rule is None and server is not None and server.blocklist:
            rule = self._server_blocklist(server.blocklist).check(*texts)
        if rule is None:
            return None
        shown = rule.replace("`", "'")  # verbatim inside a code span
        return Text("refused.blocklist", rule=shown)

    def rate(self, user_id: int) -> Text | None:
        """Take one token from the member's bucket, or say how long to wait."""
        wait = self.bucket.take(user_id)
        if wait <= 0:
            return None
        return Text("refused.rate", seconds=math.ceil(wait))

    def refund(self, user_id: int) -> None:
        self.bucket.refund(user_id)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _server_blocklist(entries: tuple[str, ...]) -> Blocklist:
        return Blocklist(entries)  # compiled once per distinct list: a change makes a new tuple

    def may_refine(
        self, interaction: discord.Interaction, author_id: int, server: ServerSettings | None = None
    ) -> Text | None:
        """A grid's buttons: the server's choice (``/settings buttons``), else the file's ``access.refine``."""
        who = server.buttons if server is not None and server.buttons is not None else self.access.refine
        if who == "author" and interaction.user.id != author_id:
            return Text("refused.refine_author")
        return None

    def may_cancel(self, interaction: discord.Interaction, author_id: int) -> Text | None:
        """The Cancel button: for the job's author and for members who may manage messages."""
        if interaction.user.id == author_id or interaction.permissions.manage_messages:
            return None
        return Text("refused.cancel_author")

    def policy(self, channel: object, server: ServerSettings | None = None) -> str:
        """What happens to flagged tiles in this channel: the server's choice for it (``/settings nsfw``),
        else the file's for NSFW or other channels (``allow`` when no checker runs)."""
        if not self.safety_checker():  # asked each time: with the redis backend, workers come and go
            return "allow"
        safety = self.settings.safety
        default = safety.nsfw_channels if getattr(channel, "nsfw", False) else safety.flagged
        return default if server is None else server.policy(getattr(channel, "id", None), default)
