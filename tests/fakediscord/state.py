"""The fake's world: application, bot user, guilds, members, commands, messages and attachments."""

# The test-facing API takes ``timeout=`` arguments by design (wait_until_ready(timeout=10), ...).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import copy
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tests.fakediscord import messages as msg
from tests.fakediscord.errors import (
    FakeDiscordError,
    cannot_edit_other_user,
    invalid_form_body,
    unknown_channel,
    unknown_message,
)
from tests.fakediscord.messages import StoredAttachment, StoredMessage, UploadedFile
from tests.fakediscord.models import (
    AnyChannel,
    Channel,
    DMChannel,
    Guild,
    Intents,
    JSONDict,
    Member,
    Permissions,
    Role,
    SnowflakeFactory,
    User,
    iso,
)
from tests.fakediscord.spec import DiscordSpec, SchemaError

if TYPE_CHECKING:
    from tests.fakediscord.interactions import Interaction

DEFAULT_TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.fake.seedgrid-test-token"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NONCE_WINDOW = 5 * 60.0  # seconds during which enforce_nonce returns the earlier message


class Broadcast:
    """A level-triggered 'something changed' signal: waiters re-check their condition after each change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.version = 0

    def notify(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, check: Callable[[], Any], timeout: float | None, what: str) -> Any:
        """Return ``check()`` once it is truthy (checked now and after every change)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = check()
                    if result:
                        return result
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}") from None


@dataclass
class Config:
    token: str = DEFAULT_TOKEN
    heartbeat_interval: int = 41250
    ack_deadline: float = 3.0
    token_lifetime: float = 15 * 60
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    rate_limit: int = 50
    rate_limit_window: float = 1.0


class FakeState:
    """Everything the fake knows. REST handlers and the test-facing API both operate on this."""

    def __init__(
        self,
        spec: DiscordSpec,
        config: Config,
        *,
        application_id: str | None,
        bot_name: str,
        clock: Callable[[], float],
    ) -> None:
        self.spec = spec
        self.config = config
        self.snowflakes = SnowflakeFactory()
        self.clock = clock
        self.changed = Broadcast()
        self.base_url = "http://127.0.0.1"  # replaced once the server has a port
        self.violations: list[str] = []
        self.protocol_errors: list[str] = []
        self.emit: Callable[[str, JSONDict], None] = lambda event, data: None
        self.intents = 0  # of the current gateway session

        self.application_id = application_id or self.snowflakes.next()
        self.application_flags = (1 << 13) | (1 << 15) | (1 << 19) | (1 << 23)  # *_LIMITED intents + commands badge
        self.bot_user = User(self.application_id, bot_name, None, bot=True, discriminator="0001")
        self.owner = User(self.snowflakes.next(), "owner", "Owner")
        self.users: dict[str, User] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.dm_channels: dict[str, DMChannel] = {}  # by channel id
        self.dm_by_user: dict[str, DMChannel] = {}  # the one DM channel with each user, by user id
        self.global_commands: list[JSONDict] = []
        self.guild_commands: dict[str, list[JSONDict]] = {}
        self.messages: dict[str, StoredMessage] = {}
        self.channel_messages: dict[str, list[str]] = {}
        self.attachments: dict[str, StoredAttachment] = {}
        self.interactions: dict[str, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}

    # ------------------------------------------------------------------ world building

    def new_id(self) -> str:
        return self.snowflakes.next()

    def now(self) -> float:
        return self.clock()

    def add_guild(self, name: str, *, bot_permissions: int = Permissions.DEFAULT_BOT) -> Guild:
        guild_id = self.new_id()
        guild = Guild(guild_id, name, owner_id=self.owner.id)
        guild.roles[guild_id] = Role(guild_id, guild_id, "@everyone", Permissions.DEFAULT_EVERYONE, position=0)
        bot_role = Role(self.new_id(), guild_id, self.bot_user.username, bot_permissions, position=1, managed=True)
        bot_role.bot_id = self.bot_user.id
        guild.roles[bot_role.id] = bot_role
        guild.members[self.bot_user.id] = Member(self.bot_user, guild_id, [bot_role.id])
        guild.members[self.owner.id] = Member(self.owner, guild_id, [])
        self.guilds[guild_id] = guild
        return guild

    def add_channel(self, guild: Guild, name: str, *, nsfw: bool = False, topic: str | None = None) -> Channel:
        channel = Channel(self.new_id(), guild.id, name, nsfw=nsfw, topic=topic, position=len(guild.channels))
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.channel_messages[channel.id] = []
        return channel

    def add_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        role = Role(self.new_id(), guild.id, name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role

    def add_member(
        self,
        guild: Guild,
        user: User,
        *,
        roles: Iterable[Role | str] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> Member:
        role_ids = [r.id if isinstance(r, Role) else str(r) for r in roles]
        for rid in role_ids:
            if rid not in guild.roles:
                raise FakeDiscordError(f"role {rid} is not a role of guild {guild.name}")
        if permissions is not None:
            # Discord has no per-member permissions: give the member a role carrying them.
            role_ids.append(self.add_role(guild, f"{user.username}-permissions", permissions).id)
        member = Member(user, guild.id, role_ids, nick=nick)
        guild.members[user.id] = member
        self.users[user.id] = user
        return member

    def guild_of(self, channel: Channel) -> Guild:
        return self.guilds[channel.guild_id]

    def member(self, guild: Guild, user_id: str) -> Member:
        try:
            return guild.members[user_id]
        except KeyError:
            raise FakeDiscordError(f"user {user_id} is not a member of guild {guild.name!r}") from None

    def bot_member(self, guild: Guild) -> Member:
        return guild.members[self.bot_user.id]

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise unknown_channel() from None

    def any_channel(self, channel_id: str) -> AnyChannel:
        """A guild channel or one of the bot's DM channels (the message routes serve both)."""
        dm = self.dm_channels.get(channel_id)
        return dm if dm is not None else self.channel(channel_id)

    def guild_or_none(self, channel: AnyChannel) -> Guild | None:
        return None if isinstance(channel, DMChannel) else self.guild_of(channel)

    def open_dm(self, user: User) -> DMChannel:
        """The bot's DM channel with ``user``: the same one every time, as on Discord."""
        dm = self.dm_by_user.get(user.id)
        if dm is None:
            dm = DMChannel(self.new_id(), user)
            self.dm_by_user[user.id] = dm
            self.dm_channels[dm.id] = dm
            self.channel_messages[dm.id] = []
            self.check_schema("PrivateChannelResponse", dm.to_payload(), f"DM channel with {user.username}")
            self.changed.notify()
        return dm

    def can_dm(self, user: User) -> bool:
        """Discord delivers a bot's DM only to a user who shares a server with it and allows DMs."""
        shares = any(user.id in g.members and self.bot_user.id in g.members for g in self.guilds.values())
        return user.dms_open and shares and not user.bot

    # ------------------------------------------------------------------ bookkeeping

    def violation(self, text: str) -> None:
        self.violations.append(text)
        self.changed.notify()

    def protocol_error(self, text: str) -> None:
        self.protocol_errors.append(text)
        self.changed.notify()

    def check_schema(self, schema: str, instance: Any, what: str) -> None:
        """Record a violation when the fake itself produced something off-spec (a bug in the fake)."""
        for err in self.spec.validate_component(schema, instance):
            self.violation(f"fake produced an invalid {schema} ({what}): {err.describe()}")

    # ------------------------------------------------------------------ messages

    def stored(self, message_id: str) -> StoredMessage:
        stored = self.messages.get(str(message_id))
        if stored is None or stored.deleted:
            raise unknown_message()
        return stored

    def channel_message(self, channel_id: str, message_id: str, *, viewer: str | None = None) -> StoredMessage:
        stored = self.stored(message_id)
        if stored.channel_id != channel_id:
            raise unknown_message()
        if stored.ephemeral and stored.visible_to != viewer:
            raise unknown_message()
        return stored

    def new_token(self) -> str:
        return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)

    def _store_attachment(
        self, channel: AnyChannel, upload: UploadedFile, entry: JSONDict, *, ephemeral: bool
    ) -> StoredAttachment:
        att_id = self.new_id()
        # Discord sanitises file names: anything but letters, digits, "." and "-" becomes "_".
        filename = re.sub(r"[^\w.\-]", "_", str(entry.get("filename") or upload.filename or "unknown"))
        size = msg.image_size(upload.data)
        att = StoredAttachment(
            id=att_id,
            channel_id=channel.id,
            filename=filename,
            content_type=msg.guess_content_type(filename, upload.content_type, upload.data),
            data=upload.data,
            url=f"{self.base_url}/attachments/{channel.id}/{att_id}/{quote(filename)}",
            description=entry.get("description"),
            ephemeral=ephemeral,
            width=size[0] if size else None,
            height=size[1] if size else None,
        )
        self.attachments[att_id] = att
        return att

    def store_upload(self, channel: Channel, upload: UploadedFile) -> StoredAttachment:
        """An attachment a user sends as a slash-command option (not part of any message)."""
        return self._store_attachment(channel, upload, {}, ephemeral=True)

    def _commit_attachments(
        self, channel: AnyChannel, plan: msg.AttachmentPlan, *, ephemeral: bool
    ) -> list[StoredAttachment]:
        """Store the new uploads of a validated plan; the message's attachments in their final order."""
        new = [self._store_attachment(channel, f, entry, ephemeral=ephemeral) for f, entry in plan.new]
        return [self.attachments[ref] if kind == "keep" else new[ref] for kind, ref in plan.order]

    def _mentions(self, guild: Guild | None, content: str) -> tuple[list[JSONDict], list[str]]:
        user_ids, role_ids = msg.mentioned_ids(content)
        users = [self.users[u].to_payload() for u in dict.fromkeys(user_ids) if u in self.users]
        roles = [r for r in dict.fromkeys(role_ids) if guild is not None and r in guild.roles]
        return users, roles

    def create_message(
        self,
        channel: AnyChannel,
        payload: JSONDict,
        files: Sequence[UploadedFile] = (),
        *,
        author: User,
        message_type: int = msg.DEFAULT,
        flags: int = 0,
        extra: JSONDict | None = None,
        interaction_id: str | None = None,
        visible_to: str | None = None,
        allow_empty: bool = False,
        path: tuple[str | int, ...] = (),
    ) -> StoredMessage:
        """Validate Discord's message rules, then store and announce a new message.

        With ``enforce_nonce`` and a ``nonce``, a message by the same author with the same nonce in the
        last few minutes is returned instead of creating another one (Discord's de-duplication).
        """
        errors = msg.check_content(payload, path)
        if errors:
            raise invalid_form_body(errors)
        if payload.get("enforce_nonce") and payload.get("nonce") is not None:
            earlier = self._by_nonce(channel, author, str(payload["nonce"]))
            if earlier is not None:
                return earlier
        plan = msg.plan_attachments(payload.get("attachments"), files, (), editing=False, path=path)
        if not allow_empty:
            msg.require_not_empty(payload, plan)
        reference = payload.get("message_reference")
        referenced: StoredMessage | None = None
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            referenced = self._resolve_reference(channel, reference, path)
            if referenced is not None:
                message_type = msg.REPLY if message_type == msg.DEFAULT else message_type
        ephemeral = bool(flags & msg.EPHEMERAL)
        attachments = self._commit_attachments(channel, plan, ephemeral=ephemeral)
        guild = self.guild_or_none(channel)
        content = str(payload.get("content") or "")
        mentions, mention_roles = self._mentions(guild, content)
        message_id = self.new_id()
        data: JSONDict = {
            "id": message_id,
            "channel_id": channel.id,
            "type": message_type,
            "content": content,
            "author": author.to_payload(),
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": False,
            "attachments": [a.to_payload() for a in attachments],
            "embeds": msg.build_embeds(payload.get("embeds"), attachments),
            "components": msg.build_components(payload.get("components")),
            "timestamp": iso(),
            "edited_timestamp": None,
            "flags": ((payload.get("flags") or 0) & msg.SETTABLE_FLAGS) | flags,
            "pinned": False,
            "tts": bool(payload.get("tts") or False),
        }
        if payload.get("nonce") is not None:
            data["nonce"] = payload["nonce"]
        if referenced is not None:
            data["message_reference"] = {
                "type": 0,
                "channel_id": referenced.channel_id,
                "message_id": referenced.id,
            }
            if guild is not None:
                data["message_reference"]["guild_id"] = guild.id
            data["referenced_message"] = self._basic(referenced.data)
        if extra:
            data.update(extra)
        stored = StoredMessage(data=data, interaction_id=interaction_id, visible_to=visible_to, created_at=self.now())
        self.messages[message_id] = stored
        self.channel_messages[channel.id].append(message_id)
        if not ephemeral:
            channel.last_message_id = message_id
        self.check_schema("MessageResponse", data, f"message {message_id}")
        self._announce("MESSAGE_CREATE", stored)
        return stored

    def _by_nonce(self, channel: AnyChannel, author: User, nonce: str) -> StoredMessage | None:
        for message_id in reversed(self.channel_messages[channel.id]):
            stored = self.messages[message_id]
            if stored.deleted or self.now() - stored.created_at > NONCE_WINDOW:
                continue
            if stored.data.get("nonce") == nonce and stored.data["author"]["id"] == author.id:
                return stored
        return None

    def _basic(self, data: JSONDict) -> JSONDict:
        return {k: copy.deepcopy(v) for k, v in data.items() if k != "referenced_message"}

    def _resolve_reference(
        self, channel: AnyChannel, reference: JSONDict, path: tuple[str | int, ...]
    ) -> StoredMessage | None:
        ref_channel = str(reference.get("channel_id") or channel.id)
        stored = self.messages.get(str(reference["message_id"]))
        if stored is None or stored.deleted or stored.channel_id != ref_channel or stored.ephemeral:
            if reference.get("fail_if_not_exists") is False:
                return None
            raise invalid_form_body(
                [SchemaError((*path, "message_reference"), "Unknown message", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE")]
            )
        return stored

    def edit_message(
        self,
        stored: StoredMessage,
        payload: JSONDict,
        files: Sequence[UploadedFile] = (),
        *,
        editor: User | None = None,
        clear_flags: int = 0,
        path: tuple[str | int, ...] = (),
    ) -> StoredMessage:
        editor = editor or self.bot_user
        if stored.author_id != editor.id:
            raise cannot_edit_other_user()
        data = stored.data
        flags = int(data["flags"])
        new_flags = payload.get("flags")
        check_flags = flags if new_flags is None else (flags & ~msg.EDITABLE_FLAGS) | (new_flags & msg.EDITABLE_FLAGS)
        merged = {
            "content": data["content"],
            "embeds": data["embeds"],
            "components": data["components"],
            "flags": check_flags,
        }
        merged.update(
            {k: v for k, v in payload.items() if k in ("content", "embeds", "components", "allowed_mentions")}
        )
        errors = msg.check_content(merged, path)
        if errors:
            raise invalid_form_body(errors)
        channel = self.any_channel(stored.channel_id)
        existing = [a["id"] for a in data["attachments"]]
        plan = msg.plan_attachments(payload.get("attachments"), files, existing, editing=True, path=path)
        if not plan.order:
            msg.require_not_empty(merged, None)  # an edit must not leave an empty message behind
        attachments = self._commit_attachments(channel, plan, ephemeral=stored.ephemeral)
        loading = bool(flags & msg.LOADING)
        stored.history.append(copy.deepcopy(data))
        guild = self.guild_or_none(channel)
        if "content" in payload:
            data["content"] = str(payload["content"] or "")
            data["mentions"], data["mention_roles"] = self._mentions(guild, data["content"])
        if "components" in payload:
            data["components"] = msg.build_components(payload["components"])
        data["attachments"] = [a.to_payload() for a in attachments]
        if "embeds" in payload:
            data["embeds"] = msg.build_embeds(payload["embeds"], attachments)
        data["flags"] = check_flags & ~clear_flags & ~msg.LOADING
        if not loading:
            data["edited_timestamp"] = iso()
        self.check_schema("MessageResponse", data, f"message {stored.id}")
        self._announce("MESSAGE_UPDATE", stored)
        return stored

    def delete_message(self, stored: StoredMessage) -> None:
        stored.deleted = True
        ids = self.channel_messages.get(stored.channel_id, [])
        if stored.id in ids:
            ids.remove(stored.id)
        channel = self.any_channel(stored.channel_id)
        if isinstance(channel, DMChannel):
            if self.intents & Intents.DIRECT_MESSAGES:
                self.emit("MESSAGE_DELETE", {"id": stored.id, "channel_id": stored.channel_id})
        elif not stored.ephemeral:
            deleted = {"id": stored.id, "channel_id": stored.channel_id, "guild_id": channel.guild_id}
            self.emit("MESSAGE_DELETE", deleted)
        self.changed.notify()

    def _announce(self, event: str, stored: StoredMessage) -> None:
        channel = self.any_channel(stored.channel_id)
        if isinstance(channel, DMChannel):  # no guild_id, no member; MESSAGE_CONTENT does not apply to DMs
            if self.intents & Intents.DIRECT_MESSAGES:
                self.emit(event, stored.snapshot())
        elif not stored.ephemeral:
            guild = self.guild_of(channel)
            data = stored.snapshot()
            data["guild_id"] = guild.id
            member = guild.members.get(stored.author_id)
            if member is not None:
                data["member"] = member.to_payload(with_user=False)
            if (
                stored.author_id != self.bot_user.id
                and not self.intents & Intents.MESSAGE_CONTENT
                and self.bot_user.id not in [m["id"] for m in data["mentions"]]
            ):
                data.update(content="", embeds=[], attachments=[], components=[])
            if self.intents & Intents.GUILD_MESSAGES:
                self.emit(event, data)
        self.changed.notify()

    def list_messages(self, channel_id: str, *, include_ephemeral: bool = True) -> list[JSONDict]:
        out = []
        for mid in self.channel_messages.get(channel_id, []):
            stored = self.messages[mid]
            if include_ephemeral or not stored.ephemeral:
                out.append(stored.snapshot())
        return out

    # ------------------------------------------------------------------ commands

    def commands_for(self, guild_id: str | None) -> list[JSONDict]:
        return self.guild_commands.get(guild_id, []) if guild_id else self.global_commands

    def set_commands(self, guild_id: str | None, requested: Sequence[JSONDict]) -> list[JSONDict]:
        """Bulk overwrite: keep the ids of commands that keep their (name, type)."""
        previous = {(c["name"], c["type"]): c for c in self.commands_for(guild_id)}
        result = [self._command(guild_id, req, previous.get((req["name"], req.get("type") or 1))) for req in requested]
        if guild_id:
            self.guild_commands[guild_id] = result
        else:
            self.global_commands = result
        for cmd in result:
            self.check_schema("ApplicationCommandResponse", cmd, f"command {cmd['name']}")
        self.changed.notify()
        return copy.deepcopy(result)

    def upsert_command(self, guild_id: str | None, req: JSONDict) -> tuple[JSONDict, bool]:
        commands = self.commands_for(guild_id)
        ctype = req.get("type") or 1
        for i, old in enumerate(commands):
            if old["name"] == req["name"] and old["type"] == ctype:
                commands[i] = self._command(guild_id, req, old)
                self.changed.notify()
                return copy.deepcopy(commands[i]), False
        cmd = self._command(guild_id, req, None)
        if guild_id:
            self.guild_commands.setdefault(guild_id, []).append(cmd)
        else:
            self.global_commands.append(cmd)
        self.check_schema("ApplicationCommandResponse", cmd, f"command {cmd['name']}")
        self.changed.notify()
        return copy.deepcopy(cmd), True

    def replace_command(self, guild_id: str | None, index: int, req: JSONDict) -> JSONDict:
        commands = self.commands_for(guild_id)
        commands[index] = self._command(guild_id, req, commands[index])
        self.check_schema("ApplicationCommandResponse", commands[index], f"command {req['name']}")
        self.changed.notify()
        return copy.deepcopy(commands[index])

    def _command(self, guild_id: str | None, req: JSONDict, old: JSONDict | None) -> JSONDict:
        perms = req.get("default_member_permissions")
        cmd: JSONDict = {
            "id": old["id"] if old else self.new_id(),
            "application_id": self.application_id,
            "version": self.new_id(),
            "type": req.get("type") or 1,
            "name": req["name"],
            "description": req.get("description") or "",
            "default_member_permissions": None if perms is None else str(perms),
            "dm_permission": req.get("dm_permission") if req.get("dm_permission") is not None else True,
            "nsfw": bool(req.get("nsfw") or False),
            "contexts": req.get("contexts"),
            "integration_types": req.get("integration_types") or [0],
        }
        for key in ("name_localizations", "description_localizations"):
            if req.get(key) is not None:
                cmd[key] = req[key]
        if req.get("options"):
            cmd["options"] = [_option_response(o) for o in req["options"]]
        if guild_id:
            cmd["guild_id"] = guild_id
            cmd.pop("dm_permission", None)
        return cmd


def _option_response(option: JSONDict) -> JSONDict:
    out = {k: v for k, v in option.items() if v is not None}
    if out.get("required") is False:
        del out["required"]
    if "options" in out:
        out["options"] = [_option_response(o) for o in out["options"]]
    if "choices" in out:
        out["choices"] = [{k: v for k, v in c.items() if v is not None} for c in out["choices"]]
    return out
