"""The REST pipeline: route matching, injected failures, rate limits, auth, parsing, validation, logging.

Every request under ``/api/v10`` goes through :meth:`RestApi.handle`:

1. match (method, path) to an operation of the OpenAPI spec (unknown route: 404 + violation);
2. injected failures (``FakeDiscord.inject``) and the per-bucket rate limit (429);
3. ``Authorization: Bot <token>`` on routes that need it (401);
4. parse the JSON or multipart body, validate path parameters, query and body against the spec
   (400 ``Invalid Form Body`` + violation);
5. run the handler in :mod:`.routes`, which applies Discord's behavioural rules;
6. validate the fake's own response against the spec (a mismatch is a bug in the fake: violation).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from tests.fakediscord.errors import DiscordHTTPError, entity_too_large, invalid_form_body, unauthorized
from tests.fakediscord.messages import UploadedFile
from tests.fakediscord.spec import API_PREFIX, Operation, RouteMatch, SchemaError
from tests.fakediscord.state import FakeState

log = logging.getLogger(__name__)


class RequestRecord(NamedTuple):
    """One request the bot made: ``(method, path, status, timestamp)`` (path relative to ``/api/v10``)."""

    method: str
    path: str
    status: int
    timestamp: float


@dataclass
class RequestDetail:
    """Everything the fake saw of one request (``FakeDiscord.request_details``)."""

    method: str
    path: str
    query: dict[str, str]
    operation_id: str | None
    status: int
    timestamp: float
    payload: Any = None
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (field, filename, size)
    response: Any = None


@dataclass
class Injection:
    """A failure the next ``count`` matching requests get instead of being handled."""

    method: str | None
    pattern: re.Pattern[str]
    status: int
    count: int
    retry_after: float
    is_global: bool = False
    hits: int = 0
    when: Callable[[RequestDetail], bool] | None = None
    """Only requests whose body (``RequestDetail.payload``, ``files``) satisfies this; checked once it is read."""

    @property
    def remaining(self) -> int:
        return self.count - self.hits

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and (self.method in (None, "*", method)) and bool(self.pattern.search(path))


@dataclass
class Hold:
    """The next request matching ``method``, ``pattern`` and ``when`` is handled — its effect is stored, as
    Discord would — but its response waits until :meth:`release`: the window in which a client can die
    after Discord did something and before it heard so."""

    method: str | None
    pattern: re.Pattern[str]
    when: Callable[[RequestDetail], bool] | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    detail: RequestDetail | None = None

    def matches(self, method: str, detail: RequestDetail) -> bool:
        if self.reached.is_set() or self.method not in (None, "*", method) or not self.pattern.search(detail.path):
            return False
        return self.when is None or self.when(detail)

    def release(self) -> None:
        self.released.set()


@dataclass
class Context:
    """What a route handler gets."""

    request: web.Request
    operation: Operation
    params: dict[str, str]
    query: dict[str, Any]
    payload: Any
    files: list[UploadedFile]
    received_at: float
    authorized: bool


Reply = tuple[int, Any]  # (status, JSON body or None for "no content")
Handler = Callable[[Context], Awaitable[Reply]]


@dataclass
class _Bucket:
    started: float
    count: int = 0


class RestApi:
    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.spec = state.spec
        self.handlers: dict[str, Handler] = {}
        self.requests: list[RequestRecord] = []
        self.details: list[RequestDetail] = []
        self.injections: list[Injection] = []
        self.holds: list[Hold] = []
        self._buckets: dict[str, _Bucket] = {}

    # ------------------------------------------------------------------ entry point

    async def handle(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        path = request.rel_url.raw_path[len(API_PREFIX) :] or "/"
        method = request.method
        received_at = state.now()
        detail = RequestDetail(method, unquote(path), dict(request.query), None, 0, received_at)
        match = self._match(method, path)
        headers: dict[str, str] = {"Via": "1.1 google"}
        validate = True
        try:
            status, body, validate = await self._process(request, match, detail, headers)
        except DiscordHTTPError as exc:
            status, body = exc.status, exc.body()
            where = match.operation.template if match is not None else detail.path
            text = f"{method} {where} -> {exc.status} {exc.code} {exc.message}: {exc.detail}"
            if exc.violation:
                state.violation(text)
            else:
                state.protocol_error(text)
        except web.HTTPRequestEntityTooLarge:
            too_large = entity_too_large(self.state.config.upload_limit)
            status, body = too_large.status, too_large.body()
            state.protocol_error(f"{method} {detail.path} -> 413 40005 request body too large")
        except Exception as exc:  # a bug in the fake: make it loud
            log.exception("fakediscord crashed handling %s %s", method, detail.path)
            state.violation(f"fake crashed handling {method} {detail.path}: {exc!r}")
            status, body, validate = 500, {"message": "500: Internal Server Error", "code": 0}, False
        if match is not None and validate:
            op = match.operation
            for err in self.spec.validate_response(op, status, body):
                state.violation(f"fake response to {method} {op.template} ({status}) is off-spec: {err.describe()}")
        detail.status = status
        detail.response = body
        self.requests.append(RequestRecord(method, detail.path, status, received_at))
        self.details.append(detail)
        state.changed.notify()
        if body is None:
            return web.Response(status=status, headers=headers)
        # Exactly "application/json" (no charset), as Discord sends it: discord.py compares the header verbatim.
        headers["Content-Type"] = "application/json"
        return web.Response(status=status, headers=headers, body=json.dumps(body, separators=(",", ":")).encode())

    async def _process(
        self, request: web.Request, match: RouteMatch | None, detail: RequestDetail, headers: dict[str, str]
    ) -> tuple[int, Any, bool]:
        """(status, body, validate the response against the spec)."""
        if match is None:
            await request.read()
            allowed = self.spec.methods_for(detail.path)
            if allowed:
                raise DiscordHTTPError(405, 0, "405: Method Not Allowed", detail=f"allowed: {allowed}", violation=True)
            raise DiscordHTTPError(404, 0, "404: Not Found", detail="no such route in the spec", violation=True)
        op = match.operation
        detail.operation_id = op.operation_id
        injected = self._injected(request.method, detail.path)
        if injected is not None:
            await request.read()
            status, body, extra = self._injection_reply(injected, op)
            headers.update(extra)
            return status, body, status == 429  # injected 5xx bodies are not in the spec
        limited = self._rate_limit(op, match, headers)
        if limited is not None:
            await request.read()
            return 429, limited, True
        ctx = await self._context(request, match, detail.timestamp, detail)
        injected = self._injected(request.method, detail.path, detail)
        if injected is not None:
            status, body, extra = self._injection_reply(injected, op)
            headers.update(extra)
            return status, body, status == 429
        handler = self.handlers.get(op.operation_id)
        if handler is None:
            message = f"the fake does not implement {op.operation_id}"
            raise DiscordHTTPError(404, 0, "404: Not Found", detail=message, violation=True)
        status, body = await handler(ctx)
        hold = next((h for h in self.holds if h.matches(request.method, detail)), None)
        if hold is not None:
            hold.detail = detail
            hold.reached.set()
            self.state.changed.notify()
            await hold.released.wait()
        return status, body, True

    def _match(self, method: str, raw_path: str) -> RouteMatch | None:
        match = self.spec.match(method, raw_path)
        if match is None:
            return None
        return RouteMatch(match.operation, {k: unquote(v) for k, v in match.path_params.items()})

    # ------------------------------------------------------------------ failures and rate limits

    def _injected(self, method: str, path: str, detail: RequestDetail | None = None) -> Injection | None:
        """The injection for this request: before its body is read (``detail`` None) those without ``when``,
        after it those with one."""
        for inj in self.injections:
            if (inj.when is None) != (detail is None):
                continue
            if inj.matches(method, path) and (detail is None or inj.when is None or inj.when(detail)):
                inj.hits += 1
                if inj.remaining <= 0:
                    self.injections.remove(inj)
                return inj
        return None

    def _bucket_hash(self, op: Operation) -> str:
        return hashlib.sha1(f"{op.method} {op.template}".encode()).hexdigest()[:32]

    def _major(self, match: RouteMatch) -> str:
        p = match.path_params
        keys = ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id", "interaction_token")
        return "+".join(p[k] for k in keys if k in p)

    def _injection_reply(self, inj: Injection, op: Operation) -> tuple[int, Any, dict[str, str]]:
        if inj.status != 429:
            reason = {500: "500: Internal Server Error", 502: "502: Bad Gateway", 503: "503: Service Unavailable"}
            return inj.status, {"message": reason.get(inj.status, f"{inj.status}: error"), "code": 0}, {}
        headers = {
            "Retry-After": str(max(1, math.ceil(inj.retry_after))),
            "X-RateLimit-Limit": str(self.state.config.rate_limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + inj.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{inj.retry_after:.3f}",
            "X-RateLimit-Bucket": self._bucket_hash(op),
            "X-RateLimit-Scope": "global" if inj.is_global else "user",
        }
        if inj.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": inj.retry_after,
            "global": inj.is_global,
            "code": 0,
        }
        return 429, body, headers

    def _rate_limit(self, op: Operation, match: RouteMatch, headers: dict[str, str]) -> Any:
        cfg = self.state.config
        key = f"{self._bucket_hash(op)}:{self._major(match)}"
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.started + cfg.rate_limit_window:
            bucket = self._buckets[key] = _Bucket(started=now)
        bucket.count += 1
        reset_after = max(0.0, bucket.started + cfg.rate_limit_window - now)
        headers.update(
            {
                "X-RateLimit-Limit": str(cfg.rate_limit),
                "X-RateLimit-Remaining": str(max(0, cfg.rate_limit - bucket.count)),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": self._bucket_hash(op),
            }
        )
        if bucket.count <= cfg.rate_limit:
            return None
        headers.update({"Retry-After": str(max(1, math.ceil(reset_after))), "X-RateLimit-Scope": "user"})
        self.state.protocol_error(f"{op.method} {op.template} -> 429 (bucket exhausted)")
        return {
            "message": "You are being rate limited.",
            "retry_after": round(reset_after, 3),
            "global": False,
            "code": 0,
        }

    # ------------------------------------------------------------------ parsing and validation

    def _authorized(self, request: web.Request, op: Operation) -> bool:
        header = request.headers.get("Authorization")
        ok = header == f"Bot {self.state.config.token}"
        if not op.auth_optional and not ok:
            raise unauthorized()
        return ok

    async def _context(
        self, request: web.Request, match: RouteMatch, received_at: float, detail: RequestDetail
    ) -> Context:
        op = match.operation
        authorized = self._authorized(request, op)
        errors: list[SchemaError] = []
        errors.extend(self.spec.validate_path_params(match))
        errors.extend(self.spec.validate_query(op, request.query))
        payload, files = await self._body(request, op)
        detail.payload = payload
        detail.files = [(f.field_name, f.filename, len(f.data)) for f in files]
        if op.request_bodies and (payload is not None or op.request_required):
            ctype = request.content_type if payload is not None else "application/json"
            errors.extend(self.spec.validate_request_body(op, ctype, {} if payload is None else payload))
            if files and "multipart/form-data" in op.request_bodies:
                errors.extend(self._check_file_fields(op, files))
        if errors:
            raise invalid_form_body(errors)
        query = self.spec.coerce_query(op, request.query)
        return Context(request, op, match.path_params, query, payload, files, received_at, authorized)

    def _check_file_fields(self, op: Operation, files: list[UploadedFile]) -> list[SchemaError]:
        declared = self.spec.multipart_file_fields(op)
        errors = []
        for f in files:
            if f.index is None or (declared and f.field_name not in declared) or f.index >= 10:
                errors.append(
                    SchemaError(
                        (f.field_name,), "File fields must be named files[0] .. files[9]", "FILE_FIELD_NAME_INVALID"
                    )
                )
        return errors

    async def _body(self, request: web.Request, op: Operation) -> tuple[Any, list[UploadedFile]]:
        if not request.body_exists:
            return None, []
        if request.content_type == "multipart/form-data":
            return await self._multipart(request)
        raw = await request.read()
        if not raw:
            return None, []
        if request.content_type != "application/json":
            if op.request_bodies:
                raise invalid_form_body(
                    [SchemaError((), f"unsupported content type {request.content_type!r}", "CONTENT_TYPE_INVALID")]
                )
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.", violation=True) from None

    async def _multipart(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        limit = self.state.config.upload_limit
        reader = await request.multipart()
        payload: Any = None
        fields: dict[str, Any] = {}
        files: list[UploadedFile] = []
        too_large = False
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise invalid_form_body([SchemaError((), "nested multipart is not supported", "CONTENT_TYPE_INVALID")])
            name = part.name or ""
            if part.filename is not None:
                data = await part.read(decode=False)
                if len(data) > limit:
                    too_large = True
                files.append(UploadedFile(name, part.filename, part.headers.get("Content-Type"), bytes(data)))
            elif name == "payload_json":
                text = await part.text()
                try:
                    payload = json.loads(text)
                except ValueError:
                    raise DiscordHTTPError(
                        400, 50109, "The request body contains invalid JSON.", violation=True
                    ) from None
            else:
                fields[name] = await part.text()
        if too_large:
            raise entity_too_large(limit)
        if payload is None:
            payload = fields
        elif fields and isinstance(payload, dict):
            payload = {**fields, **payload}
        return payload, files
