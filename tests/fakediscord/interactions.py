"""Interaction records and the INTERACTION_CREATE payloads a Discord client would produce."""

# The test-facing API takes ``timeout=`` arguments by design (wait_until_ready(timeout=10), ...).
# ruff: noqa: ASYNC109

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from tests.fakediscord import messages as msg
from tests.fakediscord.errors import FakeDiscordError
from tests.fakediscord.messages import UploadedFile
from tests.fakediscord.models import Channel, Guild, JSONDict, Member, Permissions, Role, Upload, User

if TYPE_CHECKING:
    from tests.fakediscord.state import FakeState

# Interaction types
PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

# Application command types (``data.type`` of an APPLICATION_COMMAND interaction)
CHAT_INPUT = 1
USER_COMMAND = 2
MESSAGE_COMMAND = 3

# Callback types
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9
LAUNCH_ACTIVITY = 12

CALLBACK_NAMES = {
    PONG: "PONG",
    CHANNEL_MESSAGE: "CHANNEL_MESSAGE_WITH_SOURCE",
    DEFERRED_CHANNEL_MESSAGE: "DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE",
    DEFERRED_UPDATE_MESSAGE: "DEFERRED_UPDATE_MESSAGE",
    UPDATE_MESSAGE: "UPDATE_MESSAGE",
    AUTOCOMPLETE_RESULT: "APPLICATION_COMMAND_AUTOCOMPLETE_RESULT",
    MODAL: "MODAL",
    LAUNCH_ACTIVITY: "LAUNCH_ACTIVITY",
}
INTERACTION_NAMES = {
    PING: "PING",
    APPLICATION_COMMAND: "APPLICATION_COMMAND",
    MESSAGE_COMPONENT: "MESSAGE_COMPONENT",
    AUTOCOMPLETE: "APPLICATION_COMMAND_AUTOCOMPLETE",
    MODAL_SUBMIT: "MODAL_SUBMIT",
}


def allowed_callbacks(interaction: Interaction) -> frozenset[int]:
    """Which callback types Discord accepts for an interaction."""
    if interaction.type == APPLICATION_COMMAND:
        return frozenset({CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL, LAUNCH_ACTIVITY})
    if interaction.type == MESSAGE_COMPONENT:
        return frozenset({CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL})
    if interaction.type == AUTOCOMPLETE:
        return frozenset({AUTOCOMPLETE_RESULT})
    if interaction.type == MODAL_SUBMIT:
        if interaction.source_message_id is not None:
            return frozenset({CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE})
        return frozenset({CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE})
    return frozenset({PONG})


class CallbackRecord(NamedTuple):
    """An accepted interaction callback: ``(type, body, received_at)``."""

    type: int
    body: JSONDict
    received_at: float


class RejectedCallback(NamedTuple):
    type: int | None
    body: Any
    received_at: float
    status: int
    code: int


class Interaction:
    """One interaction the fake dispatched, and everything the bot did in answer to it."""

    def __init__(
        self,
        state: FakeState,
        *,
        type: int,
        user: Member,
        channel: Channel,
        data: JSONDict,
        source_message_id: str | None = None,
        parent: Interaction | None = None,
        locale: str = "en-US",
    ) -> None:
        self._state = state
        self.id: str = state.new_id()
        self.token: str = state.new_token()
        self.type = type
        self.user = user
        self.channel_id = channel.id
        self.guild_id = channel.guild_id
        self.data = data
        self.source_message_id = source_message_id
        self.parent = parent
        self.locale = locale
        self.created_at: float = state.now()
        self.dispatched_at: float | None = None
        self.responses: list[CallbackRecord] = []
        self.rejected: list[RejectedCallback] = []
        self.original_message_id: str | None = None
        self.followup_ids: list[str] = []
        self.payload: JSONDict = self._build_payload(channel)

    def __repr__(self) -> str:
        kind = INTERACTION_NAMES.get(self.type, str(self.type))
        return f"<Interaction {kind} id={self.id} user={self.user.name} responses={[r.type for r in self.responses]}>"

    # ------------------------------------------------------------------ payload

    def _build_payload(self, channel: Channel) -> JSONDict:
        state = self._state
        guild = state.guild_of(channel)
        perms = guild.permissions_for(self.user, channel)
        app_perms = guild.permissions_for(state.bot_member(guild), channel)
        channel_payload = channel.to_payload()
        channel_payload["permissions"] = str(perms)
        member = self.user.to_payload()
        member["permissions"] = str(perms)
        payload: JSONDict = {
            "id": self.id,
            "application_id": state.application_id,
            "type": self.type,
            "token": self.token,
            "version": 1,
            "guild_id": guild.id,
            "guild": {"id": guild.id, "locale": guild.locale, "features": []},
            "guild_locale": guild.locale,
            "channel_id": channel.id,
            "channel": channel_payload,
            "member": member,
            "locale": self.locale,
            "app_permissions": str(app_perms),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": guild.id},
            "context": 0,
            "attachment_size_limit": state.config.upload_limit,
        }
        if self.type != PING:
            payload["data"] = self.data
        if self.source_message_id is not None:
            payload["message"] = state.stored(self.source_message_id).snapshot()
        return payload

    # ------------------------------------------------------------------ what the bot did

    @property
    def acknowledged(self) -> bool:
        return bool(self.responses)

    @property
    def response_type(self) -> int | None:
        return self.responses[0].type if self.responses else None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from the INTERACTION_CREATE dispatch to the first accepted callback."""
        if not self.responses or self.dispatched_at is None:
            return None
        return self.responses[0].received_at - self.dispatched_at

    @property
    def modal(self) -> JSONDict | None:
        """The modal (callback ``data``) if the bot answered with type 9."""
        for record in self.responses:
            if record.type == MODAL:
                return copy.deepcopy(record.body.get("data"))
        return None

    @property
    def original(self) -> JSONDict | None:
        if self.original_message_id is None:
            return None
        stored = self._state.messages.get(self.original_message_id)
        return None if stored is None or stored.deleted else stored.snapshot()

    @property
    def followups(self) -> list[JSONDict]:
        out = []
        for mid in self.followup_ids:
            stored = self._state.messages.get(mid)
            if stored is not None and not stored.deleted:
                out.append(stored.snapshot())
        return out

    def expired(self) -> bool:
        start = self.dispatched_at if self.dispatched_at is not None else self.created_at
        return self._state.now() - start > self._state.config.token_lifetime

    async def wait_response(self, timeout: float = 3.0) -> CallbackRecord:
        """The first accepted callback."""
        result: CallbackRecord = await self._state.changed.wait_for(
            lambda: self.responses[0] if self.responses else None, timeout, f"a callback to {self!r}"
        )
        return result

    async def wait_original(
        self, predicate: Callable[[JSONDict], bool] | None = None, timeout: float = 10.0
    ) -> JSONDict:
        """The original response message once ``predicate(message)`` holds (default: it is not loading)."""
        check = predicate or (lambda m: not m["flags"] & msg.LOADING)

        def probe() -> JSONDict | None:
            original = self.original
            return original if original is not None and check(original) else None

        result: JSONDict = await self._state.changed.wait_for(probe, timeout, f"the original response of {self!r}")
        return result

    async def wait_followup(
        self, predicate: Callable[[JSONDict], bool] | None = None, timeout: float = 10.0
    ) -> JSONDict:
        check = predicate or (lambda m: True)

        def probe() -> JSONDict | None:
            return next((m for m in self.followups if check(m)), None)

        result: JSONDict = await self._state.changed.wait_for(probe, timeout, f"a follow-up of {self!r}")
        return result


# ---------------------------------------------------------------------- application commands


def find_command(state: FakeState, guild: Guild, name: str, ctype: int = 1) -> JSONDict:
    for cmd in (*state.guild_commands.get(guild.id, []), *state.global_commands):
        if cmd["name"] == name and cmd["type"] == ctype:
            return cmd
    registered = sorted({c["name"] for c in (*state.guild_commands.get(guild.id, []), *state.global_commands)})
    raise FakeDiscordError(f"command {name!r} is not registered (registered: {registered})")


def check_can_use(state: FakeState, cmd: JSONDict, guild: Guild, channel: Channel, member: Member) -> None:
    """What the Discord client enforces before it lets a user run a command."""
    if cmd.get("nsfw") and not channel.nsfw:
        raise FakeDiscordError(f"/{cmd['name']} is age-restricted and #{channel.name} is not an NSFW channel")
    contexts = cmd.get("contexts")
    if contexts is not None and 0 not in contexts:
        raise FakeDiscordError(f"/{cmd['name']} cannot be used in guilds (contexts={contexts})")
    required = cmd.get("default_member_permissions")
    if required is not None:
        perms = guild.permissions_for(member, channel)
        if not perms & Permissions.ADMINISTRATOR and (perms & int(required)) != int(required):
            raise FakeDiscordError(f"{member.name} lacks the permissions {required} that /{cmd['name']} requires")


def command_data(
    state: FakeState,
    guild: Guild,
    channel: Channel,
    path: str,
    values: Mapping[str, Any],
    *,
    focused: str | None = None,
) -> tuple[JSONDict, JSONDict]:
    """``data`` of an APPLICATION_COMMAND (or AUTOCOMPLETE) interaction; returns (data, command)."""
    names = path.split()
    if not names:
        raise FakeDiscordError("empty command name")
    cmd = find_command(state, guild, names[0])
    resolved: JSONDict = {}
    defs: list[JSONDict] = cmd.get("options", [])
    top: list[JSONDict] = []
    holder = top
    for sub in names[1:]:
        match = next((o for o in defs if o["name"] == sub and o["type"] in (1, 2)), None)
        if match is None:
            subs = [o["name"] for o in defs if o["type"] in (1, 2)]
            raise FakeDiscordError(f"/{' '.join(names)}: {sub!r} is not a subcommand (available: {subs})")
        node: JSONDict = {"name": sub, "type": match["type"], "options": []}
        holder.append(node)
        holder = node["options"]
        defs = match.get("options", [])
    if any(o["type"] in (1, 2) for o in defs):
        subs = [o["name"] for o in defs if o["type"] in (1, 2)]
        raise FakeDiscordError(f"/{' '.join(names)} needs a subcommand: one of {subs}")
    holder.extend(_options(state, guild, channel, defs, values, resolved, focused=focused))
    data: JSONDict = {"id": cmd["id"], "name": cmd["name"], "type": cmd["type"]}
    if top:
        data["options"] = top
    if cmd.get("guild_id"):
        data["guild_id"] = cmd["guild_id"]
    if resolved:
        data["resolved"] = resolved
    return data, cmd


_MAX_SAFE = 2**53


def _options(
    state: FakeState,
    guild: Guild,
    channel: Channel,
    defs: Sequence[JSONDict],
    values: Mapping[str, Any],
    resolved: JSONDict,
    *,
    focused: str | None,
) -> list[JSONDict]:
    by_name = {d["name"]: d for d in defs}
    unknown = set(values) - set(by_name)
    if unknown:
        raise FakeDiscordError(f"unknown option(s) {sorted(unknown)}; registered: {list(by_name)}")
    out: list[JSONDict] = []
    for d in defs:
        name = d["name"]
        if name not in values or values[name] is None:
            if d.get("required") and name != focused:
                raise FakeDiscordError(f"option {name!r} is required")
            continue
        value = values[name]
        option: JSONDict = {"name": name, "type": d["type"]}
        if name == focused:
            option["value"] = str(value)
            option["focused"] = True
        else:
            option["value"] = _option_value(state, guild, channel, d, value, resolved)
        out.append(option)
    return out


def _check_choice(d: JSONDict, value: Any) -> None:
    choices = d.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise FakeDiscordError(f"option {d['name']!r}: {value!r} is not one of {[c['value'] for c in choices]}")


class _OptionContext(NamedTuple):
    state: FakeState
    guild: Guild
    channel: Channel
    definition: JSONDict
    resolved: JSONDict

    @property
    def name(self) -> str:
        return str(self.definition["name"])


def _option_value(state: FakeState, guild: Guild, channel: Channel, d: JSONDict, value: Any, resolved: JSONDict) -> Any:
    """The wire value of one option (``resolved`` filled for users, roles, channels, attachments)."""
    kind = d["type"]
    if kind == 9:  # MENTIONABLE: a user or a role
        kind = 6 if isinstance(value, Member | User) or str(value) in state.users else 8
    build = _OPTION_BUILDERS.get(kind)
    if build is None:
        raise FakeDiscordError(f"option {d['name']!r} has unsupported type {kind}")
    return build(_OptionContext(state, guild, channel, d, resolved), value)


def _string_option(c: _OptionContext, value: Any) -> Any:
    if not isinstance(value, str):
        raise FakeDiscordError(f"option {c.name!r} is a string option, got {value!r}")
    low, high = c.definition.get("min_length", 0), c.definition.get("max_length", 6000)
    if not low <= len(value) <= high:
        raise FakeDiscordError(f"option {c.name!r}: length {len(value)} outside [{low}, {high}]")
    _check_choice(c.definition, value)
    return value


def _number_option(c: _OptionContext, value: Any) -> Any:
    integer = c.definition["type"] == 4
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or (isinstance(value, float) and not math.isfinite(value)):
        raise FakeDiscordError(f"option {c.name!r} expects {'an integer' if integer else 'a number'}, got {value!r}")
    low, high = c.definition.get("min_value", -_MAX_SAFE), c.definition.get("max_value", _MAX_SAFE)
    if not low <= value <= high:
        raise FakeDiscordError(f"option {c.name!r}: {value} outside [{low}, {high}]")
    _check_choice(c.definition, value)
    return value


def _boolean_option(c: _OptionContext, value: Any) -> Any:
    if not isinstance(value, bool):
        raise FakeDiscordError(f"option {c.name!r} is a boolean option, got {value!r}")
    return value


def _user_option(c: _OptionContext, value: Any) -> Any:
    user, member = _user(c.state, c.guild, value)
    c.resolved.setdefault("users", {})[user.id] = user.to_payload()
    if member is not None:
        data = member.to_payload(with_user=False)
        data["permissions"] = str(c.guild.permissions_for(member, c.channel))
        c.resolved.setdefault("members", {})[user.id] = data
    return user.id


def _role_option(c: _OptionContext, value: Any) -> Any:
    role = value if isinstance(value, Role) else c.guild.roles.get(str(value))
    if role is None:
        raise FakeDiscordError(f"option {c.name!r}: {value!r} is not a role of {c.guild.name}")
    c.resolved.setdefault("roles", {})[role.id] = role.to_payload()
    return role.id


def _channel_option(c: _OptionContext, value: Any) -> Any:
    target = value if isinstance(value, Channel) else c.state.channels.get(str(value))
    if target is None or target.guild_id != c.guild.id:
        raise FakeDiscordError(f"option {c.name!r}: {value!r} is not a channel of {c.guild.name}")
    types = c.definition.get("channel_types")
    if types and target.type not in types:
        raise FakeDiscordError(f"option {c.name!r}: channel type {target.type} not in {types}")
    full = target.to_payload()
    data = {k: full[k] for k in ("id", "name", "type", "nsfw", "parent_id", "topic", "flags")}
    data["permissions"] = str(c.guild.permissions_for(c.state.bot_member(c.guild), target))
    c.resolved.setdefault("channels", {})[target.id] = data
    return target.id


def _attachment_option(c: _OptionContext, value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        value = Upload(str(value[0]), bytes(value[1]))
    if not isinstance(value, Upload):
        raise FakeDiscordError(f"option {c.name!r} expects an Upload(filename, data) or (filename, bytes)")
    if len(value.data) > c.state.config.upload_limit:
        raise FakeDiscordError(f"option {c.name!r}: file larger than the upload limit")
    upload = UploadedFile("files[0]", value.filename, value.content_type, value.data)
    att = c.state.store_upload(c.channel, upload)
    c.resolved.setdefault("attachments", {})[att.id] = att.to_payload()
    return att.id


_OPTION_BUILDERS: dict[int, Callable[[_OptionContext, Any], Any]] = {
    3: _string_option,
    4: _number_option,
    5: _boolean_option,
    6: _user_option,
    7: _channel_option,
    8: _role_option,
    10: _number_option,
    11: _attachment_option,
}


def _user(state: FakeState, guild: Guild, value: Any) -> tuple[User, Member | None]:
    if isinstance(value, Member):
        return value.user, guild.members.get(value.id)
    if isinstance(value, User):
        return value, guild.members.get(value.id)
    user = state.users.get(str(value))
    if user is None:
        raise FakeDiscordError(f"{value!r} is not a known user")
    return user, guild.members.get(user.id)


# ---------------------------------------------------------------------- components and modals


def component_data(
    message: JSONDict, custom_id: str, values: Sequence[Any] | None, guild: Guild, state: FakeState
) -> JSONDict:
    """``data`` of a MESSAGE_COMPONENT interaction from the stored component (must exist and be enabled)."""
    comp = msg.find_component(message, custom_id)
    if comp is None:
        ids = [c.get("custom_id") for c in msg.iter_components(message.get("components") or []) if c.get("custom_id")]
        raise FakeDiscordError(f"message {message['id']} has no component {custom_id!r} (has: {ids})")
    if comp.get("disabled"):
        raise FakeDiscordError(f"component {custom_id!r} is disabled")
    ctype = int(comp["type"])
    data: JSONDict = {"custom_id": custom_id, "component_type": ctype, "id": comp.get("id")}
    if ctype == 2:
        if values is not None:
            raise FakeDiscordError(f"{custom_id!r} is a button; use click()")
        return data
    if ctype not in (3, 5, 6, 7, 8):
        raise FakeDiscordError(f"component {custom_id!r} of type {ctype} cannot be interacted with")
    if values is None:
        raise FakeDiscordError(f"{custom_id!r} is a select menu; use select(..., values=[...])")
    low, high = comp.get("min_values", 1), comp.get("max_values", 1)
    if not low <= len(values) <= high:
        raise FakeDiscordError(f"select {custom_id!r} takes {low}..{high} values, got {len(values)}")
    if ctype == 3:
        allowed = [o["value"] for o in comp.get("options", [])]
        for v in values:
            if v not in allowed:
                raise FakeDiscordError(f"select {custom_id!r}: {v!r} is not one of {allowed}")
        data["values"] = list(values)
        return data
    resolved: JSONDict = {}
    kinds = {5: 6, 6: 8, 7: 9, 8: 7}
    fake_def = {"name": custom_id, "type": kinds[ctype]}
    channel = state.channel(message["channel_id"])
    data["values"] = [_option_value(state, guild, channel, fake_def, v, resolved) for v in values]
    data["resolved"] = resolved
    return data


def modal_submit_data(modal: JSONDict, values: Mapping[str, Any]) -> JSONDict:
    """``data`` of a MODAL_SUBMIT interaction that mirrors the modal's layout."""
    remaining = dict(values)

    def submitted(comp: JSONDict) -> JSONDict:
        ctype = comp.get("type")
        custom_id = str(comp.get("custom_id"))
        out: JSONDict = {"type": ctype, "id": comp.get("id")}
        if ctype == 4:
            value = remaining.pop(custom_id, None) if custom_id in remaining else comp.get("value") or ""
            if not isinstance(value, str):
                raise FakeDiscordError(f"text input {custom_id!r} takes a string, got {value!r}")
            required = comp.get("required", True) is not False
            if required and not value:
                raise FakeDiscordError(f"text input {custom_id!r} is required")
            if value:
                low, high = comp.get("min_length") or 0, comp.get("max_length") or 4000
                if not low <= len(value) <= high:
                    raise FakeDiscordError(f"text input {custom_id!r}: length {len(value)} outside [{low}, {high}]")
            out.update(custom_id=custom_id, value=value)
            return out
        if ctype == 3:
            chosen = remaining.pop(custom_id, [])
            if isinstance(chosen, str):
                chosen = [chosen]
            allowed = [o["value"] for o in comp.get("options", [])]
            bad = [v for v in chosen if v not in allowed]
            if bad:
                raise FakeDiscordError(f"select {custom_id!r}: {bad} not among {allowed}")
            out.update(custom_id=custom_id, values=list(chosen), component_type=3)
            return out
        if ctype == 10:  # text display: submitted as-is
            return out
        raise FakeDiscordError(f"the fake cannot submit modal component type {ctype}")

    components: list[JSONDict] = []
    for top in modal.get("components", []):
        if top.get("type") == 1:
            components.append({"type": 1, "id": top.get("id"), "components": [submitted(c) for c in top["components"]]})
        elif top.get("type") == 18:
            components.append({"type": 18, "id": top.get("id"), "component": submitted(top["component"])})
        elif top.get("type") == 10:
            components.append({"type": 10, "id": top.get("id")})
        else:
            raise FakeDiscordError(f"the fake cannot submit modal component type {top.get('type')}")
    if remaining:
        raise FakeDiscordError(f"the modal has no input(s) {sorted(remaining)}")
    _number_components(modal, components)
    return {"custom_id": modal["custom_id"], "components": components}


def _number_components(modal: JSONDict, components: list[JSONDict]) -> None:
    """Discord numbers every modal component; fill ids the bot did not set, in tree order."""
    used = {c["id"] for c in msg.iter_components(modal.get("components", [])) if isinstance(c.get("id"), int)}
    counter = 0

    def assign(comp: JSONDict) -> None:
        nonlocal counter
        if not isinstance(comp.get("id"), int):
            counter += 1
            while counter in used:
                counter += 1
            comp["id"] = counter
        for child in comp.get("components", []):
            assign(child)
        if isinstance(comp.get("component"), dict):
            assign(comp["component"])

    for comp in components:
        assign(comp)
