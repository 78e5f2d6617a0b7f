"""Plain data objects of the fake: snowflakes, users, roles, channels, guilds, uploads."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1_420_070_400_000

JSONDict = dict[str, Any]


class Permissions:
    """The permission bits the fake cares about (values from Discord's documentation)."""

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    USE_EXTERNAL_STICKERS = 1 << 37
    ALL = (1 << 51) - 1

    #: What a new guild's @everyone role gets.
    DEFAULT_EVERYONE = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | MENTION_EVERYONE
        | USE_EXTERNAL_EMOJIS
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
        | USE_EXTERNAL_STICKERS
    )
    #: What the bot's managed role gets by default (a typical invite link's permission set).
    DEFAULT_BOT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | SEND_MESSAGES_IN_THREADS
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | MANAGE_MESSAGES
    )


class Intents:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


class SnowflakeFactory:
    """Strictly increasing snowflakes whose timestamp part is the wall clock at creation."""

    def __init__(self, worker: int = 1, process: int = 0) -> None:
        self._worker = worker & 0x1F
        self._process = process & 0x1F
        self._last_ms = 0
        self._increment = itertools.count()

    def next(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self._last_ms:
            ms = self._last_ms
        else:
            self._increment = itertools.count()
        inc = next(self._increment)
        if inc > 0xFFF:
            ms += 1
            self._increment = itertools.count(1)
            inc = 0
        self._last_ms = ms
        return str(((ms - DISCORD_EPOCH_MS) << 22) | (self._worker << 17) | (self._process << 12) | inc)


def snowflake_time(snowflake: str | int) -> dt.datetime:
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def iso(moment: dt.datetime | None = None) -> str:
    """Discord's timestamp format: ``2024-05-01T12:00:00.123000+00:00``."""
    return (moment or dt.datetime.now(dt.UTC)).isoformat(timespec="microseconds")


@dataclass
class User:
    id: str
    username: str
    global_name: str | None = None
    bot: bool = False
    discriminator: str = "0"
    avatar: str | None = None
    dms_open: bool = True  # False: the user's privacy settings refuse DMs (sending there answers 403 50007)

    @property
    def name(self) -> str:
        return self.username

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_payload(self) -> JSONDict:
        """A ``UserResponse``."""
        data: JSONDict = {
            "id": self.id,
            "username": self.username,
            "avatar": self.avatar,
            "discriminator": self.discriminator,
            "public_flags": 0,
            "flags": 0,
            "global_name": self.global_name,
            "primary_guild": None,
            "avatar_decoration_data": None,
            "collectibles": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class Role:
    id: str
    guild_id: str
    name: str
    permissions: int
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    bot_id: str | None = None  # set for a bot's managed role

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def to_payload(self) -> JSONDict:
        """A ``GuildRoleResponse``."""
        data: JSONDict = {
            "id": self.id,
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": self.bot_id}
        return data


@dataclass
class PermissionOverwrite:
    id: str  # role or member id
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def to_payload(self) -> JSONDict:
        return {"id": self.id, "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class Channel:
    id: str
    guild_id: str
    name: str
    type: int = 0  # GUILD_TEXT
    nsfw: bool = False
    position: int = 0
    topic: str | None = None
    parent_id: str | None = None
    overwrites: list[PermissionOverwrite] = field(default_factory=list)
    last_message_id: str | None = None
    rate_limit_per_user: int = 0

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_payload(self) -> JSONDict:
        """A ``GuildChannelResponse`` (text channel)."""
        return {
            "id": self.id,
            "type": self.type,
            "guild_id": self.guild_id,
            "name": self.name,
            "position": self.position,
            "flags": 0,
            "parent_id": self.parent_id,
            "topic": self.topic,
            "nsfw": self.nsfw,
            "last_message_id": self.last_message_id,
            "rate_limit_per_user": self.rate_limit_per_user,
            "permission_overwrites": [o.to_payload() for o in self.overwrites],
        }


@dataclass
class DMChannel:
    """The bot's direct-message channel with one user (type 1, DM): no guild, no permissions, no name."""

    id: str
    recipient: User
    last_message_id: str | None = None
    type: int = 1  # DM

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def to_payload(self) -> JSONDict:
        """A ``PrivateChannelResponse``: the bot's DMs list only the other user as recipient."""
        return {
            "id": self.id,
            "type": self.type,
            "last_message_id": self.last_message_id,
            "flags": 0,
            "recipients": [self.recipient.to_payload()],
        }


AnyChannel = Channel | DMChannel


@dataclass
class Member:
    """A user's membership in one guild. Tests pass these to ``FakeDiscord.slash`` & co."""

    user: User
    guild_id: str
    role_ids: list[str] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso)

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def mention(self) -> str:
        return self.user.mention

    def to_payload(self, *, with_user: bool = True) -> JSONDict:
        """A ``GuildMemberResponse`` (without ``user`` for ``resolved.members``)."""
        data: JSONDict = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "flags": 0,
            "joined_at": self.joined_at,
            "nick": self.nick,
            "pending": False,
            "premium_since": None,
            "roles": list(self.role_ids),
            "mute": False,
            "deaf": False,
        }
        if with_user:
            data["user"] = self.user.to_payload()
        return data


@dataclass
class Guild:
    id: str
    name: str
    owner_id: str
    roles: dict[str, Role] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    locale: str = "en-US"

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]

    def base_permissions(self, member: Member) -> int:
        if member.id == self.owner_id:
            return Permissions.ALL
        perms = self.everyone.permissions
        for role_id in member.role_ids:
            role = self.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        if perms & Permissions.ADMINISTRATOR:
            return Permissions.ALL
        return perms

    def permissions_for(self, member: Member, channel: Channel | None = None) -> int:
        """Discord's permission computation: base, then @everyone, role and member overwrites."""
        perms = self.base_permissions(member)
        if channel is None or perms == Permissions.ALL:
            return perms
        by_id = {o.id: o for o in channel.overwrites}
        everyone = by_id.get(self.id)
        if everyone is not None:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.role_ids:
            ow = by_id.get(role_id)
            if ow is not None:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        own = by_id.get(member.id)
        if own is not None and own.type == 1:
            perms = (perms & ~own.deny) | own.allow
        return perms

    def to_payload(self, *, members: Iterable[Member], joined_at: str) -> JSONDict:
        """A GUILD_CREATE payload."""
        member_list = list(members)
        return {
            "id": self.id,
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": self.owner_id,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": self.locale,
            "system_channel_id": next(iter(self.channels), None),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "application_id": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "features": [],
            "roles": [r.to_payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "channels": [{k: v for k, v in c.to_payload().items() if k != "guild_id"} for c in self.channels.values()],
            "threads": [],
            "members": [m.to_payload() for m in member_list],
            "member_count": len(self.members),
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": joined_at,
            "large": False,
            "unavailable": False,
            "lazy": True,
        }


@dataclass(frozen=True)
class Upload:
    """A file a test user attaches to a slash command option of type ATTACHMENT."""

    filename: str
    data: bytes
    content_type: str | None = None
