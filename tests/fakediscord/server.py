"""``FakeDiscord``: the in-process fake Discord that tests start, drive and inspect."""

# The test-facing API takes ``timeout=`` arguments by design (wait_until_ready(timeout=10), ...).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.fakediscord import interactions as ixs
from tests.fakediscord.errors import FakeDiscordError
from tests.fakediscord.gateway import INVALID_SESSION, RECONNECT, Gateway
from tests.fakediscord.interactions import Interaction
from tests.fakediscord.messages import StoredMessage
from tests.fakediscord.models import Channel, DMChannel, Guild, Intents, JSONDict, Member, Permissions, Role, User
from tests.fakediscord.rest import Hold, Injection, RequestDetail, RequestRecord, RestApi
from tests.fakediscord.routes import Routes
from tests.fakediscord.spec import API_PREFIX, DiscordSpec, load_spec
from tests.fakediscord.state import DEFAULT_TOKEN, DEFAULT_UPLOAD_LIMIT, Config, FakeState

MessageRef = Mapping[str, Any] | StoredMessage | str | int
ChannelRef = Channel | str | int | None
GuildRef = Guild | str | int | None


class FakeDiscord:
    """A protocol-faithful fake of Discord's gateway and REST API on ``127.0.0.1``.

    Point discord.py at it with::

        discord.http.Route.BASE = fake.api_base_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)

    The world: one application whose bot user is ``fake.bot_user``; guild ``fake.guild`` with text channel
    ``fake.channel`` and NSFW channel ``fake.nsfw_channel``; a second guild ``fake.guild2`` with
    ``fake.channel2``; a default member ``fake.member`` ("tester") in both guilds.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        application_id: str | int | None = None,
        bot_name: str = "seedgrid",
        heartbeat_interval: int = 41250,
        ack_deadline: float = 3.0,
        token_lifetime: float = 15 * 60,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        rate_limit: int = 50,
        rate_limit_window: float = 1.0,
        bot_permissions: int = Permissions.DEFAULT_BOT,
        clock: Callable[[], float] | None = None,
        spec: DiscordSpec | None = None,
    ) -> None:
        self.clock: Callable[[], float] = clock or time.monotonic
        self._clock_offset = 0.0
        config = Config(
            token=token,
            heartbeat_interval=heartbeat_interval,
            ack_deadline=ack_deadline,
            token_lifetime=token_lifetime,
            upload_limit=upload_limit,
            rate_limit=rate_limit,
            rate_limit_window=rate_limit_window,
        )
        self.state = FakeState(
            spec or load_spec(),
            config,
            application_id=None if application_id is None else str(application_id),
            bot_name=bot_name,
            clock=self.now,
        )
        self.gateway = Gateway(self.state)
        self.rest = RestApi(self.state)
        self.routes = Routes(self.state, self.rest, lambda: self.gateway_url)
        self.state.emit = self.gateway.emit

        state = self.state
        self.guild: Guild = state.add_guild("Seedgrid Test Guild", bot_permissions=bot_permissions)
        self.channel: Channel = state.add_channel(self.guild, "general")
        self.nsfw_channel: Channel = state.add_channel(self.guild, "nsfw-art", nsfw=True)
        self.guild2: Guild = state.add_guild("Second Guild", bot_permissions=bot_permissions)
        self.channel2: Channel = state.add_channel(self.guild2, "other")
        tester = User(state.new_id(), "tester", "Tester")
        self.member: Member = state.add_member(self.guild, tester)
        state.add_member(self.guild2, tester)

        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=self.state.config.upload_limit * 12 + 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/resume", self.gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        self._port = int(server.sockets[0].getsockname()[1])
        self.state.base_url = f"http://127.0.0.1:{self._port}"
        self.gateway.resume_url = f"ws://127.0.0.1:{self._port}/gateway/resume"

    async def stop(self) -> None:
        for held in self.rest.holds:  # a held response must not keep the server from stopping
            held.release()
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise FakeDiscordError("the fake is not started")
        return self._port

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        att = self.state.attachments.get(request.match_info["attachment_id"])
        if (
            att is None
            or att.channel_id != request.match_info["channel_id"]
            or att.filename != request.match_info["filename"]
        ):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att.data, content_type=att.content_type.split(";")[0])

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """The fake's clock (``clock()`` plus every ``advance``); drives the 3 s and 15 min rules."""
        return self.clock() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Jump the fake's clock forward (e.g. ``fake.advance(15 * 60)`` to expire interaction tokens)."""
        self._clock_offset += seconds

    # ------------------------------------------------------------------ inspection

    @property
    def application_id(self) -> str:
        return self.state.application_id

    @property
    def bot_user(self) -> User:
        return self.state.bot_user

    @property
    def token(self) -> str:
        return self.state.config.token

    @property
    def violations(self) -> list[str]:
        """Requests Discord would reject as malformed, unknown routes, and off-spec responses of the fake."""
        return self.state.violations

    @property
    def protocol_errors(self) -> list[str]:
        """Other rejections: already acknowledged, unknown interaction, expired token, 429s, 401s ..."""
        return self.state.protocol_errors

    @property
    def requests(self) -> list[RequestRecord]:
        return self.rest.requests

    @property
    def request_details(self) -> list[RequestDetail]:
        return self.rest.details

    @property
    def commands(self) -> list[JSONDict]:
        """Registered global commands (and every guild's, after them)."""
        out = list(self.state.global_commands)
        for cmds in self.state.guild_commands.values():
            out.extend(cmds)
        return copy.deepcopy(out)

    def guild_commands(self, guild: GuildRef = None) -> list[JSONDict]:
        return copy.deepcopy(self.state.guild_commands.get(self._guild(guild).id, []))

    @property
    def interactions(self) -> list[Interaction]:
        return list(self.state.interactions.values())

    @property
    def gateway_connections(self) -> int:
        """How many WebSocket connections the bot opened (1 + reconnects)."""
        return self.gateway.connections_opened

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def gateway_ops(self) -> list[tuple[int, str]]:
        """``(opcode, path)`` of every gateway payload the bot sent."""
        return list(self.gateway.received)

    def messages(self, channel: ChannelRef = None, *, include_ephemeral: bool = True) -> list[JSONDict]:
        """Messages of a channel (default ``fake.channel``), oldest first, as spec-shaped dicts."""
        return self.state.list_messages(self._channel(channel).id, include_ephemeral=include_ephemeral)

    def all_messages(self) -> list[JSONDict]:
        return [m.snapshot() for m in self.state.messages.values() if not m.deleted]

    def message(self, message: MessageRef) -> JSONDict:
        return self._stored(message).snapshot()

    def message_history(self, message: MessageRef) -> list[JSONDict]:
        """Every version of a message, oldest first (the last one is the current one)."""
        stored = self._stored(message, allow_deleted=True)
        return [*(dict(v) for v in stored.history), stored.snapshot()]

    def attachment_bytes(self, message: MessageRef, filename: str | None = None) -> bytes:
        """The uploaded bytes of an attachment of a message (the only one when ``filename`` is None)."""
        data = self._stored(message).data
        atts = data["attachments"]
        if filename is None:
            if len(atts) != 1:
                raise FakeDiscordError(f"message {data['id']} has {len(atts)} attachments; name one")
            return self.state.attachments[atts[0]["id"]].data
        for att in atts:
            if att["filename"] == filename:
                return self.state.attachments[att["id"]].data
        raise FakeDiscordError(
            f"message {data['id']} has no attachment {filename!r} (has {[a['filename'] for a in atts]})"
        )

    async def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Until a bot has IDENTIFYed and received READY and every GUILD_CREATE."""
        await self.state.changed.wait_for(lambda: self.gateway.ready, timeout, "a bot to IDENTIFY")

    async def wait_for_message(
        self,
        predicate: Callable[[JSONDict], bool] | None = None,
        timeout: float = 10.0,
        *,
        channel: ChannelRef = None,
        include_existing: bool = True,
    ) -> JSONDict:
        """The first message (any channel unless ``channel``) for which ``predicate`` holds.

        The predicate is re-checked after every create and edit. With ``include_existing=False`` only
        messages created or edited after the call count.
        """
        check = predicate or (lambda m: True)
        channel_id = None if channel is None else self._channel(channel).id
        baseline = {mid: len(m.history) for mid, m in self.state.messages.items()} if not include_existing else None

        def probe() -> JSONDict | None:
            for mid, stored in self.state.messages.items():
                if stored.deleted or (channel_id is not None and stored.channel_id != channel_id):
                    continue
                if baseline is not None and mid in baseline and baseline[mid] == len(stored.history):
                    continue
                if check(stored.data):
                    return stored.snapshot()
            return None

        result: JSONDict = await self.state.changed.wait_for(probe, timeout, "a matching message")
        return result

    async def wait_for_request(
        self, method: str, path_regex: str, timeout: float = 10.0, *, status: int | None = None
    ) -> RequestRecord:
        pattern = re.compile(path_regex)
        start = len(self.rest.requests)

        def probe() -> RequestRecord | None:
            for rec in self.rest.requests[start:]:
                if rec.method == method and pattern.search(rec.path) and (status is None or rec.status == status):
                    return rec
            return None

        result: RequestRecord = await self.state.changed.wait_for(probe, timeout, f"{method} {path_regex}")
        return result

    async def wait_for_gateway_op(self, op: int, count: int = 1, timeout: float = 10.0) -> None:
        """Until the bot has sent ``count`` gateway payloads with opcode ``op`` (1 heartbeat, 6 resume ...)."""

        def probe() -> bool:
            return sum(1 for seen, _ in self.gateway.received if seen == op) >= count

        await self.state.changed.wait_for(probe, timeout, f"{count} gateway payload(s) with opcode {op}")

    async def wait_for_commands(self, timeout: float = 10.0) -> list[JSONDict]:
        await self.state.changed.wait_for(lambda: self.commands, timeout, "registered commands")
        return self.commands

    # ------------------------------------------------------------------ world building

    def add_member(
        self,
        name: str,
        *,
        permissions: int | None = None,
        roles: Iterable[Role | str] = (),
        guild: GuildRef = None,
        nick: str | None = None,
        global_name: str | None = None,
    ) -> Member:
        """A new user who is a member of ``guild`` (default ``fake.guild``)."""
        user = User(self.state.new_id(), name, global_name)
        target = self._guild(guild)
        member = self.state.add_member(target, user, roles=roles, permissions=permissions, nick=nick)
        self._announce_member(target, member)
        return member

    def add_to_guild(
        self, user: Member | User, guild: GuildRef, *, roles: Iterable[Role | str] = (), permissions: int | None = None
    ) -> Member:
        target = self._guild(guild)
        base = user.user if isinstance(user, Member) else user
        member = self.state.add_member(target, base, roles=roles, permissions=permissions)
        self._announce_member(target, member)
        return member

    def _announce_member(self, guild: Guild, member: Member) -> None:
        if self.gateway.ready and self.state.intents & Intents.GUILD_MEMBERS:
            self.gateway.emit("GUILD_MEMBER_ADD", {**member.to_payload(), "guild_id": guild.id})

    def add_role(self, name: str, permissions: int = 0, *, guild: GuildRef = None) -> Role:
        target = self._guild(guild)
        role = self.state.add_role(target, name, permissions)
        if self.gateway.ready:
            self.gateway.emit("GUILD_ROLE_CREATE", {"guild_id": target.id, "role": role.to_payload()})
        return role

    def add_channel(
        self, name: str, *, guild: GuildRef = None, nsfw: bool = False, topic: str | None = None
    ) -> Channel:
        target = self._guild(guild)
        channel = self.state.add_channel(target, name, nsfw=nsfw, topic=topic)
        if self.gateway.ready:
            self.gateway.emit("CHANNEL_CREATE", channel.to_payload())
        return channel

    # ------------------------------------------------------------------ direct messages

    def close_dms(self, user: Member | User) -> None:
        """The user's privacy settings refuse DMs: the bot may still open the DM channel, but every message it
        sends there answers ``403 {"code": 50007, "message": "Cannot send messages to this user"}``."""
        (user.user if isinstance(user, Member) else user).dms_open = False

    def open_dms(self, user: Member | User) -> None:
        (user.user if isinstance(user, Member) else user).dms_open = True

    def dm_channel(self, user: Member | User) -> DMChannel | None:
        """The bot's DM channel with ``user``, once the bot has opened it (``POST /users/@me/channels``)."""
        return self.state.dm_by_user.get(user.id)

    def direct_messages(self, user: Member | User) -> list[JSONDict]:
        """What the bot sent ``user`` in DMs, oldest first (empty when it never opened the DM channel)."""
        dm = self.dm_channel(user)
        return [] if dm is None else self.state.list_messages(dm.id)

    async def wait_for_direct_message(
        self, user: Member | User, predicate: Callable[[JSONDict], bool] | None = None, timeout: float = 10.0
    ) -> JSONDict:
        """The first message in the bot's DMs with ``user`` for which ``predicate`` holds (re-checked on edits)."""
        check = predicate or (lambda m: True)

        def probe() -> JSONDict | None:
            return next((m for m in self.direct_messages(user) if check(m)), None)

        result: JSONDict = await self.state.changed.wait_for(probe, timeout, f"a DM to {user.name}")
        return result

    # ------------------------------------------------------------------ acting as users

    async def slash(
        self,
        user: Member,
        command: str,
        /,
        *,
        channel: ChannelRef = None,
        guild: GuildRef = None,
        options: Mapping[str, Any] | None = None,
        locale: str = "en-US",
        **values: Any,
    ) -> Interaction:
        """Run ``/command`` (``"group sub"`` for subcommands) as ``user`` with typed option values.

        The command and options must be registered; values are checked against the registered option
        types, bounds and choices the way the Discord client does. Use ``options={...}`` for option names
        that are not Python identifiers or clash with the keyword arguments.
        """
        target_channel, target_guild, member = self._where(user, channel, guild)
        merged = {**(options or {}), **values}
        data, cmd = ixs.command_data(self.state, target_guild, target_channel, command, merged)
        ixs.check_can_use(self.state, cmd, target_guild, target_channel, member)
        ix = Interaction(
            self.state, type=ixs.APPLICATION_COMMAND, user=member, channel=target_channel, data=data, locale=locale
        )
        return await self._dispatch(ix)

    async def message_command(
        self, user: Member, message: MessageRef, name: str, /, *, locale: str = "en-US"
    ) -> Interaction:
        """Run the message context-menu command ``name`` (type 3: Apps → name) on a stored message as ``user``.

        Like Discord: the interaction's ``data`` is ``{id, name, type: 3, target_id, resolved: {messages:
        {target_id: message}}}``, the message as ``GET`` would return it; the user must be able to see it.
        """
        stored = self._stored(message)
        channel = self.state.channel(stored.channel_id)
        member = self._member_for(user, channel)
        if stored.ephemeral and stored.visible_to != member.id:
            raise FakeDiscordError(f"{member.name} cannot see ephemeral message {stored.id}")
        guild = self.state.guild_of(channel)
        cmd = ixs.find_command(self.state, guild, name, ixs.MESSAGE_COMMAND)
        ixs.check_can_use(self.state, cmd, guild, channel, member)
        snapshot = stored.snapshot()
        self.state.check_schema("MessageResponse", snapshot, "resolved message")
        data: JSONDict = {
            "id": cmd["id"],
            "name": cmd["name"],
            "type": ixs.MESSAGE_COMMAND,
            "target_id": stored.id,
            "resolved": {"messages": {stored.id: snapshot}},
        }
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        ix = Interaction(
            self.state, type=ixs.APPLICATION_COMMAND, user=member, channel=channel, data=data, locale=locale
        )
        return await self._dispatch(ix)

    async def autocomplete(
        self,
        user: Member,
        command: str,
        /,
        focused: str,
        *,
        channel: ChannelRef = None,
        guild: GuildRef = None,
        options: Mapping[str, Any] | None = None,
        timeout: float = 3.0,
        locale: str = "en-US",
        **values: Any,
    ) -> list[JSONDict]:
        """Type into option ``focused`` and return the choices the bot answers with (callback type 8)."""
        target_channel, target_guild, member = self._where(user, channel, guild)
        merged = {**(options or {}), **values}
        merged.setdefault(focused, "")
        data, _ = ixs.command_data(self.state, target_guild, target_channel, command, merged, focused=focused)
        ix = Interaction(
            self.state, type=ixs.AUTOCOMPLETE, user=member, channel=target_channel, data=data, locale=locale
        )
        await self._dispatch(ix)
        record = await ix.wait_response(timeout)
        choices: list[JSONDict] = (record.body.get("data") or {}).get("choices") or []
        return choices

    async def click(self, user: Member, message: MessageRef, custom_id: str, *, locale: str = "en-US") -> Interaction:
        """Click the button ``custom_id`` on a stored message (it must be there and enabled)."""
        return await self._component(user, message, custom_id, None, locale=locale)

    async def select(self, user: Member, message: MessageRef, custom_id: str, values: Sequence[Any]) -> Interaction:
        """Pick ``values`` in the select menu ``custom_id`` of a stored message."""
        return await self._component(user, message, custom_id, list(values))

    async def click_raw(
        self,
        user: Member,
        message: MessageRef,
        custom_id: str,
        *,
        component_type: int = 2,
        values: Sequence[str] | None = None,
        locale: str = "en-US",
    ) -> Interaction:
        """A MESSAGE_COMPONENT interaction with any ``custom_id`` (for fuzzing the bot's parsing)."""
        stored = self._stored(message)
        member = self._member_for(user, self.state.channel(stored.channel_id))
        data: JSONDict = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = list(values)
        ix = Interaction(
            self.state,
            type=ixs.MESSAGE_COMPONENT,
            user=member,
            channel=self.state.channel(stored.channel_id),
            data=data,
            source_message_id=stored.id,
            locale=locale,
        )
        return await self._dispatch(ix)

    async def _component(
        self, user: Member, message: MessageRef, custom_id: str, values: list[Any] | None, *, locale: str = "en-US"
    ) -> Interaction:
        stored = self._stored(message)
        channel = self.state.channel(stored.channel_id)
        member = self._member_for(user, channel)
        if stored.ephemeral and stored.visible_to != member.id:
            raise FakeDiscordError(f"{member.name} cannot see ephemeral message {stored.id}")
        data = ixs.component_data(stored.data, custom_id, values, self.state.guild_of(channel), self.state)
        ix = Interaction(
            self.state,
            type=ixs.MESSAGE_COMPONENT,
            user=member,
            channel=channel,
            data=data,
            source_message_id=stored.id,
            locale=locale,
        )
        return await self._dispatch(ix)

    async def submit_modal(
        self, user: Member, modal_ix: Interaction, values: Mapping[str, Any], *, locale: str = "en-US"
    ) -> Interaction:
        """Submit the modal the bot answered ``modal_ix`` with; ``values`` maps text-input custom_ids to text."""
        modal = modal_ix.modal
        if modal is None:
            raise FakeDiscordError(f"{modal_ix!r} was not answered with a modal")
        channel = self.state.channel(modal_ix.channel_id)
        member = self._member_for(user, channel)
        if member.id != modal_ix.user.id:
            raise FakeDiscordError("only the user who opened a modal can submit it")
        data = ixs.modal_submit_data(modal, values)
        source = modal_ix.source_message_id
        if source is not None and (source not in self.state.messages or self.state.messages[source].deleted):
            source = None
        ix = Interaction(
            self.state,
            type=ixs.MODAL_SUBMIT,
            user=member,
            channel=channel,
            data=data,
            source_message_id=source,
            parent=modal_ix,
            locale=locale,
        )
        return await self._dispatch(ix)

    async def say(
        self, user: Member, content: str, *, channel: ChannelRef = None, reply_to: MessageRef | None = None
    ) -> JSONDict:
        """Post a plain message as ``user`` (dispatches MESSAGE_CREATE)."""
        target = self._channel(channel)
        member = self._member_for(user, target)
        payload: JSONDict = {"content": content}
        if reply_to is not None:
            payload["message_reference"] = {"message_id": self._stored(reply_to).id}
        stored = self.state.create_message(target, payload, author=member.user)
        return stored.snapshot()

    async def _dispatch(self, ix: Interaction, timeout: float = 10.0) -> Interaction:
        """Send INTERACTION_CREATE and return once it is on the wire (after a RESUME if the bot is away)."""
        state = self.state
        # The gateway payload has no schema of its own; its parts must match the REST shapes.
        state.check_schema("GuildMemberResponse", ix.payload["member"], "interaction member")
        state.check_schema("GuildChannelResponse", ix.payload["channel"], "interaction channel")
        if "message" in ix.payload:
            state.check_schema("MessageResponse", ix.payload["message"], "interaction message")
        state.interactions[ix.id] = ix
        state.interactions_by_token[ix.token] = ix
        delivered = self.gateway.dispatch("INTERACTION_CREATE", ix.payload)
        try:
            async with asyncio.timeout(timeout):
                await delivered
        except TimeoutError:
            raise FakeDiscordError(f"{ix!r} was not delivered within {timeout}s (is the bot connected?)") from None
        ix.dispatched_at = self.now()
        state.changed.notify()
        return ix

    # ------------------------------------------------------------------ gateway control

    async def drop_gateway(self, code: int | None = None) -> None:
        """Kill the bot's gateway socket (abruptly, or with close ``code``); discord.py reconnects and RESUMEs."""
        await self.gateway.drop(code)

    def request_reconnect(self) -> None:
        """Send opcode 7 RECONNECT; discord.py reconnects and RESUMEs."""
        self.gateway.send_op(RECONNECT, None)

    def invalidate_session(self, resumable: bool = False) -> None:
        """Send opcode 9 INVALID_SESSION; with ``resumable=False`` discord.py IDENTIFYs again."""
        if not resumable and self.gateway.session is not None:
            self.gateway.session.invalidate()
        self.gateway.send_op(INVALID_SESSION, resumable)

    async def wait_for_resume(self, count: int = 1, timeout: float = 10.0) -> None:
        await self.state.changed.wait_for(
            lambda: self.gateway.resume_count >= count and self.gateway.connected, timeout, "a RESUME"
        )

    # ------------------------------------------------------------------ failure injection

    def inject(
        self,
        method: str | None,
        path_regex: str,
        *,
        status: int = 429,
        count: int = 1,
        retry_after: float = 0.2,
        is_global: bool = False,
        when: Callable[[RequestDetail], bool] | None = None,
    ) -> Injection:
        """Make the next ``count`` requests matching ``method`` (None/"*": any) and ``path_regex``
        (searched in the path relative to ``/api/v10``) fail with ``status`` (429 with Discord's body and
        headers, a 5xx, or a 403/404). ``when`` narrows it to requests whose body satisfies it."""
        injection = Injection(method, re.compile(path_regex), status, count, retry_after, is_global, when=when)
        self.rest.injections.append(injection)
        return injection

    def hold(self, method: str | None, path_regex: str, *, when: Callable[[RequestDetail], bool] | None = None) -> Hold:
        """Handle the next matching request (its effect is stored) but keep its response until
        ``hold.release()``; ``await hold.reached.wait()`` tells when it got that far."""
        held = Hold(method, re.compile(path_regex), when)
        self.rest.holds.append(held)
        return held

    # ------------------------------------------------------------------ lookups

    def _guild(self, guild: GuildRef) -> Guild:
        if guild is None:
            return self.guild
        if isinstance(guild, Guild):
            return guild
        try:
            return self.state.guilds[str(guild)]
        except KeyError:
            raise FakeDiscordError(f"unknown guild {guild}") from None

    def _channel(self, channel: ChannelRef) -> Channel:
        if channel is None:
            return self.channel
        if isinstance(channel, Channel):
            return channel
        try:
            return self.state.channels[str(channel)]
        except KeyError:
            raise FakeDiscordError(f"unknown channel {channel}") from None

    def _member_for(self, user: Member | User, channel: Channel) -> Member:
        guild = self.state.guild_of(channel)
        return self.state.member(guild, user.id)

    def _where(self, user: Member, channel: ChannelRef, guild: GuildRef) -> tuple[Channel, Guild, Member]:
        if channel is None and guild is not None:
            target_guild = self._guild(guild)
            target_channel = next(iter(target_guild.channels.values()))
        else:
            target_channel = self._channel(channel)
            target_guild = self.state.guild_of(target_channel)
            if guild is not None and self._guild(guild).id != target_guild.id:
                raise FakeDiscordError("channel is not in that guild")
        return target_channel, target_guild, self._member_for(user, target_channel)

    def _stored(self, message: MessageRef, *, allow_deleted: bool = False) -> StoredMessage:
        if isinstance(message, StoredMessage):
            mid = message.id
        elif isinstance(message, Mapping):
            mid = str(message["id"])
        else:
            mid = str(message)
        stored = self.state.messages.get(mid)
        if stored is None or (stored.deleted and not allow_deleted):
            raise FakeDiscordError(f"no message {mid}")
        return stored
