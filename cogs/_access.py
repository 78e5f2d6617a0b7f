"""Who may use the bot where, how fast, and with which words: the checks every entry point runs first.

Each check returns ``None`` when the member may go on, or a sentence to show them privately.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import discord

from bot.config import Settings
from bot.policy import Blocklist
from bot.ratelimit import TokenBucket


class Gatekeeper:
    def __init__(self, settings: Settings, *, safety_checker: Callable[[], bool]) -> None:
        self.settings = settings
        self.access = settings.access
        self.blocklist = Blocklist(settings.safety.blocklist)
        self.bucket = TokenBucket(self.access.rate_burst, self.access.rate_per_minute / 60.0)
        self.safety_checker = safety_checker

    def where(self, interaction: discord.Interaction) -> str | None:
        """Server, channel, role and direct-message rules from ``[access]``."""
        access = self.access
        if interaction.guild_id is None:
            return None if access.direct_messages else "This bot works in servers only, not in direct messages."
        if access.guilds and interaction.guild_id not in access.guilds:
            return "This bot is not enabled in this server."
        if access.channels and interaction.channel_id not in access.channels:
            return "This bot is not enabled in this channel; ask an admin where it can be used."
        if access.roles:
            roles = {role.id for role in getattr(interaction.user, "roles", [])}
            if not roles.intersection(access.roles):
                return "You need one of the roles this server set for the bot."
        return None

    def blocked(self, *texts: str) -> str | None:
        rule = self.blocklist.check(*texts)
        if rule is None:
            return None
        shown = rule.replace("`", "'")  # verbatim inside a code span
        return f"That prompt is not allowed here (it matched the server's rule `{shown}`)."

    def rate(self, user_id: int) -> str | None:
        """Take one token from the member's bucket, or say how long to wait."""
        wait = self.bucket.take(user_id)
        if wait <= 0:
            return None
        return f"You are starting jobs quickly; try again in {math.ceil(wait)} s."

    def refund(self, user_id: int) -> None:
        self.bucket.refund(user_id)

    def may_refine(self, interaction: discord.Interaction, author_id: int) -> str | None:
        if self.access.refine == "author" and interaction.user.id != author_id:
            return "Only the member who made this grid can refine or re-roll it here."
        return None

    def policy(self, channel: object) -> str:
        """What happens to flagged tiles in this channel (``allow`` when no checker runs)."""
        if not self.safety_checker():  # asked each time: with the redis backend, workers come and go
            return "allow"
        safety = self.settings.safety
        return safety.nsfw_channels if getattr(channel, "nsfw", False) else safety.flagged
