"""The gateway: a JSON-encoded, uncompressed Discord gateway v10 over aiohttp WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakediscord.errors import FakeDiscordError
from tests.fakediscord.models import Intents, JSONDict
from tests.fakediscord.state import FakeState

log = logging.getLogger(__name__)

# Opcodes
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11

# Close codes
UNKNOWN_OPCODE = 4001
DECODE_ERROR = 4002
NOT_AUTHENTICATED = 4003
AUTHENTICATION_FAILED = 4004
ALREADY_AUTHENTICATED = 4005
INVALID_API_VERSION = 4012
INVALID_INTENTS = 4013

_BUFFER_LIMIT = 5000


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    path: str
    queue: asyncio.Queue[tuple[int | None, str]] = field(default_factory=asyncio.Queue)
    session: Session | None = None
    writer: asyncio.Task[None] | None = None

    def send(self, payload: JSONDict, seq: int | None = None) -> None:
        self.queue.put_nowait((seq, json.dumps(payload, separators=(",", ":"))))


@dataclass(eq=False)
class Session:
    id: str
    token: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: list[tuple[int, str]] = field(default_factory=list)
    connection: Connection | None = None
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    ready: bool = False
    invalid: bool = False

    def frame(self, event: str, data: JSONDict) -> tuple[int, JSONDict]:
        self.seq += 1
        payload = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
        self.buffer.append((self.seq, json.dumps(payload, separators=(",", ":"))))
        if len(self.buffer) > _BUFFER_LIMIT:
            del self.buffer[: len(self.buffer) - _BUFFER_LIMIT]
        return self.seq, payload

    def sent(self, seq: int) -> None:
        for key in [k for k in self.waiters if k <= seq]:
            fut = self.waiters.pop(key)
            if not fut.done():
                fut.set_result(None)

    def invalidate(self) -> None:
        self.invalid = True
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(FakeDiscordError(f"gateway session {self.id} was invalidated before delivery"))
        self.waiters.clear()


class Gateway:
    """Accepts discord.py's gateway connections; the fake pushes dispatches through :meth:`dispatch`."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.resume_url = ""
        self.session: Session | None = None
        self.connections_opened = 0
        self.identify_count = 0
        self.resume_count = 0
        self.received: list[tuple[int, str]] = []  # (op, path) of every client payload
        self._live: set[Connection] = set()

    # ------------------------------------------------------------------ test-facing

    @property
    def ready(self) -> bool:
        return self.session is not None and self.session.ready and not self.session.invalid

    @property
    def connected(self) -> bool:
        s = self.session
        return s is not None and s.connection is not None and not s.connection.ws.closed

    def dispatch(self, event: str, data: JSONDict) -> asyncio.Future[None]:
        """Queue a dispatch on the current session; the future resolves once it is written to a socket.

        While the bot is disconnected the event waits in the session buffer and is replayed on RESUME.
        """
        session = self.session
        if session is None or session.invalid:
            raise FakeDiscordError("no bot session is connected to the fake gateway")
        seq, payload = session.frame(event, data)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.waiters[seq] = fut
        conn = session.connection
        if conn is not None and not conn.ws.closed:
            conn.send(payload, seq)
        return fut

    def emit(self, event: str, data: JSONDict) -> None:
        """Fire-and-forget dispatch used for state changes (MESSAGE_CREATE ...); no-op without a session."""
        if self.session is None or self.session.invalid:
            return
        fut = self.dispatch(event, data)
        fut.add_done_callback(_consume)

    async def drop(self, code: int | None = None) -> None:
        """Kill the bot's socket: abruptly (no close frame) by default, or with a close ``code``."""
        session = self.session
        conn = session.connection if session else None
        if conn is None:
            raise FakeDiscordError("no gateway connection to drop")
        self._detach(conn)
        if code is None:
            if conn.transport is not None:
                conn.transport.abort()
        else:
            await conn.ws.close(code=code, message=b"fake drop")

    def send_op(self, op: int, data: Any) -> None:
        session = self.session
        if session is None or session.connection is None:
            raise FakeDiscordError("no gateway connection")
        session.connection.send({"op": op, "d": data})

    async def close(self) -> None:
        for conn in list(self._live):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake shutting down")
            if conn.writer is not None:
                conn.writer.cancel()
        if self.session is not None:
            self.session.invalidate()

    # ------------------------------------------------------------------ connection handling

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, autoping=True)
        await ws.prepare(request)
        self.connections_opened += 1
        conn = Connection(ws=ws, transport=request.transport, path=request.path)
        self._live.add(conn)
        conn.writer = asyncio.create_task(self._writer(conn), name="fakediscord-gateway-writer")
        try:
            if request.query.get("v") != "10" or request.query.get("encoding", "json") != "json":
                await ws.close(code=INVALID_API_VERSION, message=b"Invalid API version")
                return ws
            conn.send(
                {
                    "op": HELLO,
                    "d": {"heartbeat_interval": self.state.config.heartbeat_interval, "_trace": ["fakediscord"]},
                }
            )
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    try:
                        payload = json.loads(message.data)
                    except (ValueError, UnicodeDecodeError):
                        await ws.close(code=DECODE_ERROR, message=b"Error while decoding payload.")
                        break
                    await self._received(conn, payload)
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self._detach(conn)
            self._live.discard(conn)
            await self._drain_writer(conn)
        return ws

    async def _drain_writer(self, conn: Connection) -> None:
        if conn.writer is None:
            return
        conn.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await conn.writer

    def _detach(self, conn: Connection) -> None:
        session = conn.session
        if session is not None and session.connection is conn:
            session.connection = None

    async def _writer(self, conn: Connection) -> None:
        while True:
            seq, text = await conn.queue.get()
            if conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            if seq is not None and conn.session is not None:
                conn.session.sent(seq)

    async def _received(self, conn: Connection, payload: Any) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
            await conn.ws.close(code=DECODE_ERROR, message=b"Error while decoding payload.")
            return
        op = payload["op"]
        data = payload.get("d")
        self.received.append((op, conn.path))
        log.debug("gateway <- op %s on %s", op, conn.path)
        self.state.changed.notify()
        if op == HEARTBEAT:
            conn.send({"op": HEARTBEAT_ACK})
            return
        if op == IDENTIFY:
            await self._identify(conn, data if isinstance(data, dict) else {})
            return
        if op == RESUME:
            await self._resume(conn, data if isinstance(data, dict) else {})
            return
        if conn.session is None:
            await conn.ws.close(code=NOT_AUTHENTICATED, message=b"Not authenticated.")
            return
        if op == REQUEST_GUILD_MEMBERS:
            self._members_chunk(conn.session, data if isinstance(data, dict) else {})
            return
        if op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE):
            return
        await conn.ws.close(code=UNKNOWN_OPCODE, message=b"Unknown opcode.")

    async def _identify(self, conn: Connection, data: JSONDict) -> None:
        if conn.session is not None:
            await conn.ws.close(code=ALREADY_AUTHENTICATED, message=b"Already authenticated.")
            return
        if data.get("token") != self.state.config.token:
            await conn.ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents >= 1 << 26:
            await conn.ws.close(code=INVALID_INTENTS, message=b"Invalid intent(s).")
            return
        self.identify_count += 1
        if self.session is not None:
            self.session.invalidate()
        shard = data.get("shard")
        session = Session(
            id=secrets.token_hex(16),
            token=data["token"],
            intents=intents,
            shard=shard if isinstance(shard, list) else None,
        )
        session.connection = conn
        conn.session = session
        self.session = session
        self.state.intents = intents
        state = self.state
        guilds = list(state.guilds.values())
        ready: JSONDict = {
            "v": 10,
            "user": {
                **state.bot_user.to_payload(),
                "bot": True,
                "verified": True,
                "mfa_enabled": True,
                "email": None,
                "flags": 0,
            },
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_url,
            "application": {"id": state.application_id, "flags": state.application_flags},
            "user_settings": {},
            "private_channels": [],
            "presences": [],
            "relationships": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "_trace": ["fakediscord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        self._send_dispatch(session, "READY", ready)
        state.check_schema("UserResponse", ready["user"], "READY user")
        for guild in guilds:
            for role in guild.roles.values():
                state.check_schema("GuildRoleResponse", role.to_payload(), f"role {role.name}")
            for member in guild.members.values():
                state.check_schema("GuildMemberResponse", member.to_payload(), f"member {member.name}")
            for channel in guild.channels.values():
                state.check_schema("GuildChannelResponse", channel.to_payload(), f"channel {channel.name}")
            members = [
                m for m in guild.members.values() if intents & Intents.GUILD_MEMBERS or m.id == state.bot_user.id
            ]
            bot_member = guild.members[state.bot_user.id]
            self._send_dispatch(
                session, "GUILD_CREATE", guild.to_payload(members=members, joined_at=bot_member.joined_at)
            )
        session.ready = True
        state.changed.notify()

    def _send_dispatch(self, session: Session, event: str, data: JSONDict) -> None:
        seq, payload = session.frame(event, data)
        if session.connection is not None:
            session.connection.send(payload, seq)

    async def _resume(self, conn: Connection, data: JSONDict) -> None:
        self.resume_count += 1
        session = self.session
        seq = data.get("seq")
        if (
            session is None
            or session.invalid
            or data.get("session_id") != session.id
            or data.get("token") != session.token
            or not isinstance(seq, int)
            or seq > session.seq
            or (session.buffer and seq < session.buffer[0][0] - 1)
        ):
            conn.send({"op": INVALID_SESSION, "d": False})
            return
        if session.connection is not None and session.connection is not conn:
            old = session.connection
            session.connection = None
            with contextlib.suppress(Exception):
                await old.ws.close(code=4009, message=b"Session resumed elsewhere.")
        session.connection = conn
        conn.session = session
        for frame_seq, text in session.buffer:
            if frame_seq > seq:
                conn.queue.put_nowait((frame_seq, text))
        self._send_dispatch(session, "RESUMED", {"_trace": ["fakediscord"]})
        self.state.changed.notify()

    def _members_chunk(self, session: Session, data: JSONDict) -> None:
        guild = self.state.guilds.get(str(data.get("guild_id")))
        if guild is None:
            return
        query = str(data.get("query") or "")
        wanted = {str(u) for u in data.get("user_ids") or []}
        members = [
            m
            for m in guild.members.values()
            if (not wanted or m.id in wanted) and m.user.username.lower().startswith(query.lower())
        ]
        limit = int(data.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: JSONDict = {
            "guild_id": guild.id,
            "members": [m.to_payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)


def _consume(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.exception()
