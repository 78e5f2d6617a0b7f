"""REST route handlers: Discord's behaviour for the endpoints a bot uses.

Handlers receive a validated :class:`~.rest.Context` and return ``(status, body)``; Discord's error
answers are raised as :class:`~.errors.DiscordHTTPError`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from tests.fakediscord import errors as fail
from tests.fakediscord import interactions as ixs
from tests.fakediscord import messages as msg
from tests.fakediscord.interactions import CallbackRecord, Interaction, RejectedCallback
from tests.fakediscord.messages import StoredMessage
from tests.fakediscord.models import AnyChannel, Channel, DMChannel, Guild, JSONDict, Permissions
from tests.fakediscord.rest import Context, Handler, Reply, RestApi
from tests.fakediscord.spec import SchemaError
from tests.fakediscord.state import FakeState

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
LOCALES = frozenset(
    {
        "ar",
        "bg",
        "cs",
        "da",
        "de",
        "el",
        "en-GB",
        "en-US",
        "es-419",
        "es-ES",
        "fi",
        "fr",
        "he",
        "hi",
        "hr",
        "hu",
        "id",
        "it",
        "ja",
        "ko",
        "lt",
        "nl",
        "no",
        "pl",
        "pt-BR",
        "ro",
        "ru",
        "sv-SE",
        "th",
        "tr",
        "uk",
        "vi",
        "zh-CN",
        "zh-TW",
    }
)  # the spec's AvailableLocalesEnum
_MAX_MODAL_COMPONENTS = 5  # Discord's documented limit; the spec's ModalInteractionCallbackRequestData allows 40

_registry: dict[str, Callable[[Routes, Context], Any]] = {}


def route(operation_id: str) -> Callable[[Callable[[Routes, Context], Any]], Callable[[Routes, Context], Any]]:
    def register(fn: Callable[[Routes, Context], Any]) -> Callable[[Routes, Context], Any]:
        _registry[operation_id] = fn
        return fn

    return register


class Routes:
    def __init__(self, state: FakeState, api: RestApi, gateway_url: Callable[[], str]) -> None:
        self.state = state
        self.gateway_url = gateway_url
        for operation_id, fn in _registry.items():
            api.handlers[operation_id] = self._bind(fn)

    def _bind(self, fn: Callable[[Routes, Context], Any]) -> Handler:
        async def handler(ctx: Context) -> Reply:
            result: Reply = fn(self, ctx)
            return result

        return handler

    # ------------------------------------------------------------------ helpers

    def _guild(self, guild_id: str) -> Guild:
        guild = self.state.guilds.get(guild_id)
        if guild is None:
            raise fail.unknown_guild()
        return guild

    def _bot_perms(self, channel: Channel) -> int:
        guild = self.state.guild_of(channel)
        return guild.permissions_for(self.state.bot_member(guild), channel)

    def _require(self, channel: AnyChannel, needed: int) -> None:
        if isinstance(channel, DMChannel):  # the bot's own DMs: no permissions (delivery is checked on send)
            return
        perms = self._bot_perms(channel)
        if not perms & Permissions.VIEW_CHANNEL:
            raise fail.missing_access()
        if perms & needed != needed:
            raise fail.missing_permissions()

    def _app(self, ctx: Context) -> None:
        if ctx.params.get("application_id", self.state.application_id) != self.state.application_id:
            raise fail.DiscordHTTPError(403, 20012, "You are not authorized to perform this action on this application")

    # ------------------------------------------------------------------ users, application, gateway

    @route("get_my_user")
    def get_my_user(self, ctx: Context) -> Reply:
        data = self.state.bot_user.to_payload()
        data.update(bot=True, mfa_enabled=True, locale="en-US", verified=True, email=None, premium_type=0)
        return 200, data

    @route("create_dm")
    def create_dm(self, ctx: Context) -> Reply:
        """``User.create_dm()``: the bot's DM channel with a user, the same one each time. Opening it always
        works; whether the user accepts DMs is only checked when the bot sends there (403 50007)."""
        payload: JSONDict = ctx.payload or {}
        recipient_id = payload.get("recipient_id")
        if recipient_id is None:
            raise fail.form_error(("recipient_id",), "This field is required", "BASE_TYPE_REQUIRED")
        user = self.state.users.get(str(recipient_id))
        if user is None or user.id == self.state.bot_user.id:
            raise fail.invalid_recipients()
        return 200, self.state.open_dm(user).to_payload()

    @route("get_user")
    def get_user(self, ctx: Context) -> Reply:
        user = self.state.users.get(ctx.params["user_id"])
        if user is None:
            raise fail.unknown_user()
        return 200, user.to_payload()

    @route("get_my_application")
    @route("get_my_oauth2_application")
    def get_my_application(self, ctx: Context) -> Reply:
        state = self.state
        return 200, {
            "id": state.application_id,
            "name": state.bot_user.username,
            "icon": None,
            "description": "A bot under test (fakediscord)",
            "type": None,
            "bot": state.bot_user.to_payload() | {"bot": True},
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": state.application_flags,
            "flags_new": str(state.application_flags),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": state.owner.to_payload(),
            "team": None,
            "approximate_guild_count": len(state.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": ["applications.commands", "bot"],
            "rpc_origins": [],
            "tags": [],
            "install_params": {"scopes": ["applications.commands", "bot"], "permissions": str(Permissions.DEFAULT_BOT)},
            "integration_types_config": {"0": {}},
        }

    @route("get_gateway")
    def get_gateway(self, ctx: Context) -> Reply:
        return 200, {"url": self.gateway_url()}

    @route("get_bot_gateway")
    def get_bot_gateway(self, ctx: Context) -> Reply:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return 200, {"url": self.gateway_url(), "shards": 1, "session_start_limit": limit}

    # ------------------------------------------------------------------ guilds and channels

    @route("get_guild")
    def get_guild(self, ctx: Context) -> Reply:
        guild = self._guild(ctx.params["guild_id"])
        data = guild.to_payload(members=(), joined_at="")
        keep = [
            "id",
            "name",
            "icon",
            "splash",
            "discovery_splash",
            "banner",
            "description",
            "owner_id",
            "afk_channel_id",
            "afk_timeout",
            "verification_level",
            "default_message_notifications",
            "explicit_content_filter",
            "mfa_level",
            "nsfw_level",
            "premium_tier",
            "premium_subscription_count",
            "premium_progress_bar_enabled",
            "preferred_locale",
            "system_channel_id",
            "system_channel_flags",
            "rules_channel_id",
            "public_updates_channel_id",
            "safety_alerts_channel_id",
            "vanity_url_code",
            "application_id",
            "max_members",
            "max_video_channel_users",
            "features",
            "roles",
            "emojis",
            "stickers",
        ]
        out = {k: data[k] for k in keep}
        out.update(
            region="deprecated",
            home_header=None,
            widget_enabled=False,
            widget_channel_id=None,
            max_presences=None,
            max_stage_video_channel_users=50,
        )
        return 200, out

    @route("list_guild_channels")
    def list_guild_channels(self, ctx: Context) -> Reply:
        guild = self._guild(ctx.params["guild_id"])
        return 200, [c.to_payload() for c in guild.channels.values()]

    @route("list_guild_roles")
    def list_guild_roles(self, ctx: Context) -> Reply:
        guild = self._guild(ctx.params["guild_id"])
        return 200, [r.to_payload() for r in guild.roles.values()]

    @route("get_guild_member")
    def get_guild_member(self, ctx: Context) -> Reply:
        guild = self._guild(ctx.params["guild_id"])
        member = guild.members.get(ctx.params["user_id"])
        if member is None:
            raise fail.unknown_member()
        return 200, member.to_payload()

    @route("get_channel")
    def get_channel(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, 0)
        return 200, channel.to_payload()

    @route("trigger_typing_indicator")
    def trigger_typing_indicator(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, Permissions.SEND_MESSAGES)
        return 204, None

    # ------------------------------------------------------------------ channel messages

    @route("create_message")
    def create_message(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        payload: JSONDict = ctx.payload or {}
        needed = Permissions.SEND_MESSAGES
        if ctx.files:
            needed |= Permissions.ATTACH_FILES
        if payload.get("message_reference"):
            needed |= Permissions.READ_MESSAGE_HISTORY
        self._require(channel, needed)
        if isinstance(channel, DMChannel) and not self.state.can_dm(channel.recipient):
            raise fail.cannot_send_to_user()
        stored = self.state.create_message(channel, payload, ctx.files, author=self.state.bot_user)
        return 200, stored.snapshot()

    @route("get_message")
    def get_message(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, Permissions.READ_MESSAGE_HISTORY)
        return 200, self.state.channel_message(channel.id, ctx.params["message_id"]).snapshot()

    @route("list_messages")
    def list_messages(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, Permissions.READ_MESSAGE_HISTORY)
        limit = int(ctx.query.get("limit", 50))
        if not 1 <= limit <= 100:
            raise fail.form_error(("limit",), "int value should be between 1 and 100", "NUMBER_TYPE_MAX")
        visible = [m for m in self.state.list_messages(channel.id) if not m["flags"] & msg.EPHEMERAL]
        if "before" in ctx.query:
            visible = [m for m in visible if int(m["id"]) < int(ctx.query["before"])]
        if "after" in ctx.query:
            visible = [m for m in visible if int(m["id"]) > int(ctx.query["after"])]
            return 200, list(reversed(visible[:limit]))
        return 200, list(reversed(visible))[:limit]

    @route("update_message")
    def update_message(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, 0)
        stored = self.state.channel_message(channel.id, ctx.params["message_id"])  # ephemeral ones: 404
        self.state.edit_message(stored, ctx.payload or {}, ctx.files, editor=self.state.bot_user)
        return 200, stored.snapshot()

    @route("delete_message")
    def delete_message(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        stored = self.state.channel_message(channel.id, ctx.params["message_id"])
        if stored.author_id != self.state.bot_user.id:
            if isinstance(channel, DMChannel):  # nobody may delete the other side's DMs
                raise fail.cannot_execute_on_dm()
            self._require(channel, Permissions.MANAGE_MESSAGES)
        self.state.delete_message(stored)
        return 204, None

    @route("add_my_message_reaction")
    def add_my_message_reaction(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        self._require(channel, Permissions.ADD_REACTIONS | Permissions.READ_MESSAGE_HISTORY)
        stored = self.state.channel_message(channel.id, ctx.params["message_id"])
        emoji = _emoji(ctx.params["emoji_name"])
        reactions: list[JSONDict] = stored.data.setdefault("reactions", [])
        existing = next((r for r in reactions if r["emoji"] == emoji), None)
        if existing is None:
            reactions.append(
                {
                    "emoji": emoji,
                    "count": 1,
                    "count_details": {"burst": 0, "normal": 1},
                    "burst_colors": [],
                    "me_burst": False,
                    "me": True,
                }
            )
        elif not existing["me"]:
            existing.update(me=True, count=existing["count"] + 1)
            existing["count_details"]["normal"] += 1
        self.state.changed.notify()
        return 204, None

    @route("delete_my_message_reaction")
    def delete_my_message_reaction(self, ctx: Context) -> Reply:
        channel = self.state.any_channel(ctx.params["channel_id"])
        stored = self.state.channel_message(channel.id, ctx.params["message_id"])
        emoji = _emoji(ctx.params["emoji_name"])
        reactions: list[JSONDict] = stored.data.get("reactions", [])
        for r in list(reactions):
            if r["emoji"] == emoji and r["me"]:
                r.update(me=False, count=r["count"] - 1)
                r["count_details"]["normal"] -= 1
                if r["count"] == 0:
                    reactions.remove(r)
        if not reactions:
            stored.data.pop("reactions", None)
        self.state.changed.notify()
        return 204, None

    # ------------------------------------------------------------------ application commands

    def _command_scope(self, ctx: Context) -> str | None:
        self._app(ctx)
        guild_id = ctx.params.get("guild_id")
        if guild_id is not None and guild_id not in self.state.guilds:
            raise fail.missing_access()
        return guild_id

    def _check_commands(self, commands: list[JSONDict]) -> None:
        errors: list[SchemaError] = []
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(commands):
            key = (cmd["name"], cmd.get("type") or 1)
            if key in seen:
                errors.append(
                    SchemaError(
                        (i, "name"), "Application command names must be unique", "APPLICATION_COMMANDS_DUPLICATE_NAME"
                    )
                )
            seen.add(key)
            errors.extend(_command_errors(cmd, (i,)))
        if errors:
            raise fail.invalid_form_body(errors)

    @route("bulk_set_application_commands")
    @route("bulk_set_guild_application_commands")
    def bulk_set_commands(self, ctx: Context) -> Reply:
        guild_id = self._command_scope(ctx)
        commands = ctx.payload or []
        self._check_commands(commands)
        return 200, self.state.set_commands(guild_id, commands)

    @route("list_application_commands")
    @route("list_guild_application_commands")
    def list_commands(self, ctx: Context) -> Reply:
        guild_id = self._command_scope(ctx)
        return 200, copy.deepcopy(self.state.commands_for(guild_id))

    @route("create_application_command")
    @route("create_guild_application_command")
    def create_command(self, ctx: Context) -> Reply:
        guild_id = self._command_scope(ctx)
        self._check_commands([ctx.payload])
        cmd, created = self.state.upsert_command(guild_id, ctx.payload)
        return (201 if created else 200), cmd

    def _find_command(self, ctx: Context) -> tuple[str | None, int]:
        guild_id = self._command_scope(ctx)
        for i, cmd in enumerate(self.state.commands_for(guild_id)):
            if cmd["id"] == ctx.params["command_id"]:
                return guild_id, i
        raise fail.unknown_command()

    @route("get_application_command")
    @route("get_guild_application_command")
    def get_command(self, ctx: Context) -> Reply:
        guild_id, i = self._find_command(ctx)
        return 200, copy.deepcopy(self.state.commands_for(guild_id)[i])

    @route("update_application_command")
    @route("update_guild_application_command")
    def update_command(self, ctx: Context) -> Reply:
        guild_id, i = self._find_command(ctx)
        current = self.state.commands_for(guild_id)[i]
        merged = {**current, **(ctx.payload or {})}
        self._check_commands([merged])
        return 200, self.state.replace_command(guild_id, i, merged)

    @route("delete_application_command")
    @route("delete_guild_application_command")
    def delete_command(self, ctx: Context) -> Reply:
        guild_id, i = self._find_command(ctx)
        del self.state.commands_for(guild_id)[i]
        self.state.changed.notify()
        return 204, None

    # ------------------------------------------------------------------ interaction callback

    @route("create_interaction_response")
    def create_interaction_response(self, ctx: Context) -> Reply:
        state = self.state
        ix = state.interactions.get(ctx.params["interaction_id"])
        if ix is None or ix.token != ctx.params["interaction_token"]:
            raise fail.unknown_interaction()
        body: JSONDict = ctx.payload if isinstance(ctx.payload, dict) else {}
        ctype = body.get("type")
        try:
            resource = self._callback(ix, ctx, body, ctype)
        except fail.DiscordHTTPError as exc:
            ix.rejected.append(RejectedCallback(ctype, copy.deepcopy(body), ctx.received_at, exc.status, exc.code))
            raise
        ix.responses.append(CallbackRecord(int(ctype or 0), copy.deepcopy(body), ctx.received_at))
        state.changed.notify()
        if not ctx.query.get("with_response"):
            return 204, None
        original = state.messages.get(ix.original_message_id or "")
        info: JSONDict = {"id": ix.id, "type": ix.type, "channel_id": ix.channel_id, "guild_id": ix.guild_id}
        if original is not None and ctype in (ixs.CHANNEL_MESSAGE, ixs.DEFERRED_CHANNEL_MESSAGE, ixs.UPDATE_MESSAGE):
            info.update(
                response_message_id=original.id,
                response_message_loading=bool(original.data["flags"] & msg.LOADING),
                response_message_ephemeral=original.ephemeral,
            )
        reply: JSONDict = {"interaction": info}
        if resource is not None:
            reply["resource"] = resource
        return 200, reply

    def _callback(self, ix: Interaction, ctx: Context, body: JSONDict, ctype: Any) -> JSONDict | None:
        state = self.state
        if ix.acknowledged:
            raise fail.already_acknowledged()
        if ix.dispatched_at is None or ctx.received_at - ix.dispatched_at > state.config.ack_deadline:
            raise fail.unknown_interaction()
        kind = ixs.INTERACTION_NAMES.get(ix.type, str(ix.type))
        if ctype not in ixs.allowed_callbacks(ix):
            name = ixs.CALLBACK_NAMES.get(ctype, str(ctype)) if isinstance(ctype, int) else repr(ctype)
            raise fail.form_error(
                ("type",),
                f"Interaction response type {name} is not valid for a {kind} interaction",
                "INTERACTION_RESPONSE_TYPE_INVALID",
            )
        data: JSONDict = body.get("data") or {}
        if ctx.files and ctype not in (ixs.CHANNEL_MESSAGE, ixs.UPDATE_MESSAGE):
            raise fail.form_error(
                ("files",), f"Files cannot be sent with callback type {ctype}", "INTERACTION_FILES_INVALID"
            )
        channel = state.channel(ix.channel_id)
        if ctype == ixs.CHANNEL_MESSAGE:
            flags = int(data.get("flags") or 0)
            stored = self._interaction_message(ix, channel, data, ctx, flags & msg.EPHEMERAL)
            ix.original_message_id = stored.id
            return {"type": ixs.CHANNEL_MESSAGE, "message": stored.snapshot()}
        if ctype == ixs.DEFERRED_CHANNEL_MESSAGE:
            flags = int(data.get("flags") or 0) & msg.EPHEMERAL
            stored = self._interaction_message(ix, channel, {}, ctx, flags | msg.LOADING, allow_empty=True)
            ix.original_message_id = stored.id
            return None
        if ctype == ixs.DEFERRED_UPDATE_MESSAGE:
            ix.original_message_id = ix.source_message_id
            return None
        if ctype == ixs.UPDATE_MESSAGE:
            assert ix.source_message_id is not None
            stored = state.stored(ix.source_message_id)
            state.edit_message(stored, data, ctx.files, editor=state.bot_user, path=("data",))
            ix.original_message_id = stored.id
            return {"type": ixs.UPDATE_MESSAGE, "message": stored.snapshot()}
        if ctype == ixs.MODAL:
            self._check_modal(data)
            return None
        return None  # AUTOCOMPLETE_RESULT, LAUNCH_ACTIVITY: recorded only

    def _check_modal(self, data: JSONDict) -> None:
        errors: list[SchemaError] = []
        components = data.get("components") or []
        if len(components) > _MAX_MODAL_COMPONENTS:
            errors.append(
                SchemaError(
                    ("data", "components"),
                    f"Must be {_MAX_MODAL_COMPONENTS} or fewer in length.",
                    "BASE_TYPE_MAX_LENGTH",
                )
            )
        seen: set[str] = set()
        for i, comp in enumerate(components):
            if comp.get("type") == 1:
                for j, child in enumerate(comp.get("components", [])):
                    if child.get("type") == 4 and not child.get("label"):
                        errors.append(
                            SchemaError(
                                ("data", "components", i, "components", j, "label"),
                                "This field is required",
                                "BASE_TYPE_REQUIRED",
                            )
                        )
        for comp in msg.iter_components(components):
            cid = comp.get("custom_id")
            if cid is not None:
                if cid in seen:
                    errors.append(
                        SchemaError(
                            ("data", "components"),
                            f"Component custom id {cid!r} is duplicated",
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                        )
                    )
                seen.add(cid)
        if errors:
            raise fail.invalid_form_body(errors)

    def _interaction_message(
        self,
        ix: Interaction,
        channel: Channel,
        data: JSONDict,
        ctx: Context,
        flags: int,
        *,
        allow_empty: bool = False,
        followup: bool = False,
    ) -> StoredMessage:
        state = self.state
        guild = state.guild_of(channel)
        meta: JSONDict = {
            "id": ix.id,
            "type": ix.type,
            "user": ix.user.user.to_payload(),
            "authorizing_integration_owners": {"0": guild.id},
        }
        if followup and ix.original_message_id:
            meta["original_response_message_id"] = ix.original_message_id
        if ix.type == ixs.MESSAGE_COMPONENT:
            meta["interacted_message_id"] = ix.source_message_id
        if ix.type == ixs.MODAL_SUBMIT and ix.parent is not None:
            parent_meta: JSONDict = {
                "id": ix.parent.id,
                "type": ix.parent.type,
                "user": ix.parent.user.user.to_payload(),
                "authorizing_integration_owners": {"0": guild.id},
            }
            if ix.parent.type == ixs.MESSAGE_COMPONENT:
                parent_meta["interacted_message_id"] = ix.parent.source_message_id
            meta["triggering_interaction_metadata"] = parent_meta
        extra: JSONDict = {
            "webhook_id": state.application_id,
            "application_id": state.application_id,
            "interaction_metadata": meta,
        }
        message_type = msg.DEFAULT
        if ix.type == ixs.APPLICATION_COMMAND:
            message_type = msg.CHAT_INPUT_COMMAND if ix.data.get("type", 1) == 1 else msg.CONTEXT_MENU_COMMAND
            extra["interaction"] = {
                "id": ix.id,
                "type": ix.type,
                "name": _command_path(ix.data),
                "user": ix.user.user.to_payload(),
            }
        payload = {k: v for k, v in data.items() if k != "message_reference"}
        return state.create_message(
            channel,
            payload,
            ctx.files,
            author=state.bot_user,
            message_type=message_type,
            flags=flags,
            extra=extra,
            interaction_id=ix.id,
            visible_to=ix.user.id if flags & msg.EPHEMERAL else None,
            allow_empty=allow_empty,
            path=("data",) if not followup else (),
        )

    # ------------------------------------------------------------------ interaction webhooks

    def _webhook_interaction(self, ctx: Context) -> Interaction:
        ix = self.state.interactions_by_token.get(ctx.params["webhook_token"])
        if ix is None or ctx.params["webhook_id"] != self.state.application_id:
            raise fail.unknown_webhook()
        if ix.expired():
            raise fail.invalid_webhook_token()
        if not ix.acknowledged:
            raise fail.unknown_webhook()
        return ix

    def _webhook_message(self, ix: Interaction, message_id: str | None) -> StoredMessage:
        target = ix.original_message_id if message_id is None else message_id
        if target is None or (message_id is not None and target not in (ix.original_message_id, *ix.followup_ids)):
            raise fail.unknown_message()
        return self.state.stored(target)

    @route("execute_webhook")
    def execute_webhook(self, ctx: Context) -> Reply:
        ix = self._webhook_interaction(ctx)
        state = self.state
        payload: JSONDict = ctx.payload or {}
        if payload.get("thread_name") is not None or ctx.query.get("thread_id") is not None:
            raise fail.form_error(
                ("thread_id",), "Interaction webhooks cannot target threads", "WEBHOOK_THREAD_INVALID"
            )
        original = state.messages.get(ix.original_message_id or "")
        if (
            original is not None
            and not original.deleted
            and original.data["flags"] & msg.LOADING
            and ix.response_type == ixs.DEFERRED_CHANNEL_MESSAGE
        ):
            # The first follow-up after a "thinking" defer replaces the loading message.
            # Its ephemerality was decided by the defer; the follow-up's own flags are ignored.
            body = {k: v for k, v in payload.items() if k not in ("username", "avatar_url", "tts", "flags")}
            state.edit_message(original, body, ctx.files, editor=state.bot_user)
            stored = original
        else:
            flags = int(payload.get("flags") or 0)
            body = {k: v for k, v in payload.items() if k not in ("username", "avatar_url", "flags")}
            body["flags"] = flags & ~msg.EPHEMERAL
            channel = state.channel(ix.channel_id)
            stored = self._interaction_message(ix, channel, body, ctx, flags & msg.EPHEMERAL, followup=True)
        ix.followup_ids.append(stored.id)
        state.changed.notify()
        if ctx.query.get("wait"):
            return 200, stored.snapshot()
        return 204, None

    @route("get_original_webhook_message")
    @route("get_webhook_message")
    def get_webhook_message(self, ctx: Context) -> Reply:
        ix = self._webhook_interaction(ctx)
        return 200, self._webhook_message(ix, ctx.params.get("message_id")).snapshot()

    @route("update_original_webhook_message")
    @route("update_webhook_message")
    def update_webhook_message(self, ctx: Context) -> Reply:
        ix = self._webhook_interaction(ctx)
        stored = self._webhook_message(ix, ctx.params.get("message_id"))
        self.state.edit_message(stored, ctx.payload or {}, ctx.files, editor=self.state.bot_user)
        return 200, stored.snapshot()

    @route("delete_original_webhook_message")
    @route("delete_webhook_message")
    def delete_webhook_message(self, ctx: Context) -> Reply:
        ix = self._webhook_interaction(ctx)
        stored = self._webhook_message(ix, ctx.params.get("message_id"))
        self.state.delete_message(stored)
        return 204, None


def _emoji(raw: str) -> JSONDict:
    if ":" in raw:
        name, _, emoji_id = raw.partition(":")
        return {"id": emoji_id, "name": name}
    return {"id": None, "name": raw}


def _command_path(data: JSONDict) -> str:
    parts = [data.get("name", "")]
    options = data.get("options") or []
    while options and options[0].get("type") in (1, 2):
        parts.append(options[0]["name"])
        options = options[0].get("options") or []
    return " ".join(parts)


def _command_errors(cmd: JSONDict, path: tuple[str | int, ...]) -> list[SchemaError]:
    """Rules Discord applies to command definitions beyond the schema."""
    errors: list[SchemaError] = []
    ctype = cmd.get("type") or 1
    name = str(cmd.get("name", ""))
    if ctype == 1:
        if not _COMMAND_NAME.match(name) or name != name.lower():
            errors.append(SchemaError((*path, "name"), "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME"))
        if not cmd.get("description"):
            errors.append(SchemaError((*path, "description"), "This field is required", "BASE_TYPE_REQUIRED"))
    elif ctype in (2, 3):  # user and message context menus: a display name, no description, no options
        if not name.strip():
            errors.append(SchemaError((*path, "name"), "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME"))
        if cmd.get("description"):
            errors.append(
                SchemaError(
                    (*path, "description"),
                    "Context menu commands cannot have description",
                    "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION_INVALID",
                )
            )
        if cmd.get("options"):
            errors.append(
                SchemaError(
                    (*path, "options"),
                    "Context menu commands cannot have options",
                    "APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS_INVALID",
                )
            )
    errors.extend(_localization_errors(cmd, path, chat=ctype == 1))
    errors.extend(_option_errors(cmd.get("options") or [], (*path, "options")))
    return errors


def _localization_errors(obj: JSONDict, path: tuple[str | int, ...], *, chat: bool) -> list[SchemaError]:
    """``name_localizations`` / ``description_localizations``: keys are Discord locales, and a localized name of
    a chat command or option follows the same rule as the name itself (the schema checks only the lengths)."""
    errors: list[SchemaError] = []
    for field in ("name_localizations", "description_localizations"):
        for locale, value in (obj.get(field) or {}).items():
            if locale not in LOCALES:
                errors.append(SchemaError((*path, field, locale), "Invalid Locale", "INVALID_LOCALE"))
            elif (
                field == "name_localizations"
                and chat
                and (not _COMMAND_NAME.match(str(value)) or value != str(value).lower())
            ):
                errors.append(
                    SchemaError((*path, field, locale), "Command name is invalid", "APPLICATION_COMMAND_INVALID_NAME")
                )
    return errors


def _localized_duplicates(items: list[JSONDict], path: tuple[str | int, ...]) -> list[SchemaError]:
    """Siblings (options, subcommands, choices) must keep distinct names in every locale, as in English."""
    errors: list[SchemaError] = []
    locales = {locale for item in items for locale in (item.get("name_localizations") or {})}
    for locale in sorted(locales):
        seen: set[str] = set()
        for i, item in enumerate(items):
            name = (item.get("name_localizations") or {}).get(locale, item.get("name"))
            if name in seen:
                errors.append(
                    SchemaError(
                        (*path, i, "name_localizations", locale),
                        "Option names must be unique",
                        "APPLICATION_COMMAND_OPTION_NAME_DUPLICATED",
                    )
                )
            seen.add(name)
    return errors


def _option_errors(options: list[JSONDict], path: tuple[str | int, ...]) -> list[SchemaError]:
    errors: list[SchemaError] = _localized_duplicates(options, path)
    optional_seen = False
    names: set[str] = set()
    for i, opt in enumerate(options):
        errors.extend(_localization_errors(opt, (*path, i), chat=True))
        name = str(opt.get("name", ""))
        if not _COMMAND_NAME.match(name) or name != name.lower():
            errors.append(SchemaError((*path, i, "name"), "Option name is invalid", "APPLICATION_COMMAND_INVALID_NAME"))
        if name in names:
            errors.append(
                SchemaError(
                    (*path, i, "name"), "Option names must be unique", "APPLICATION_COMMAND_OPTION_NAME_DUPLICATED"
                )
            )
        names.add(name)
        if opt.get("type") in (1, 2):
            errors.extend(_option_errors(opt.get("options") or [], (*path, i, "options")))
            continue
        if opt.get("required"):
            if optional_seen:
                errors.append(
                    SchemaError(
                        (*path, i, "required"),
                        "Required options must be placed before non-required options",
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    )
                )
        else:
            optional_seen = True
        if opt.get("autocomplete") and opt.get("choices"):
            errors.append(
                SchemaError(
                    (*path, i, "autocomplete"),
                    "Autocomplete and choices are mutually exclusive",
                    "APPLICATION_COMMAND_AUTOCOMPLETE_INVALID",
                )
            )
    return errors
