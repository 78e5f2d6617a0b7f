"""What crosses Redis between the bot and its workers: jobs, events and results, as plain bytes.

Everything is JSON or raw PNG in Redis stream fields and hashes, so ``redis-cli`` shows what is
going on, and a worker on another machine needs only this module's view of :mod:`bot.jobs`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from bot.engine.events import Cancelled, Done, Event, Failed, Loading, Preview, Progress, Started
from bot.imaging.tiles import Tiles
from bot.jobs import Job, JobKind, JobRequest, JobResult, Tile
from bot.texts import Text

WIRE_VERSION = 3
"""Bumped when the format changes; a worker refuses jobs of another version (and says so)."""


SCOPE = re.compile(r"[a-z0-9-]{1,32}")


class WireError(ValueError):
    """Bytes from Redis that are not a job, event or result of this version."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The names of every key and stream under one prefix."""

    prefix: str

    def jobs_for(self, model: str) -> str:
        """The stream of jobs for the configured model ``model`` (its name, never ``""``), waiting for a
        worker that serves it (consumer group :attr:`group`, one per stream)."""
        if not model:
            raise ValueError("a job stream is named after a model: resolve the default model's name first")
        return f"{self.prefix}:jobs:{model}"

    @property
    def group(self) -> str:
        return "workers"

    @property
    def dead(self) -> str:
        """Jobs given up on after too many deliveries, for the admin to inspect."""
        return f"{self.prefix}:dead"

    @property
    def workers(self) -> str:
        """Sorted set: worker name → time of its last heartbeat (Redis's clock)."""
        return f"{self.prefix}:workers"

    def worker_info(self, name: str) -> str:
        return f"{self.prefix}:worker:{name}"

    # A job's keys carry the *scope* of whoever handed it out: "bot" for the bot, "cli-<pid>" for a
    # command-line run, whose job ids come from a store of its own and would otherwise collide.

    def events(self, job_id: int, scope: str = "bot") -> str:
        """A job's event stream: dispatched, started, loading, progress, preview, then done | failed | cancelled."""
        return f"{self.prefix}:{scope}:job:{job_id}:events"

    def result(self, job_id: int, scope: str = "bot") -> str:
        """A finished job's images and figures (a hash, with an expiry)."""
        return f"{self.prefix}:{scope}:job:{job_id}:result"

    def cancel(self, job_id: int, scope: str = "bot") -> str:
        """Present while a job's cancellation is requested."""
        return f"{self.prefix}:{scope}:job:{job_id}:cancel"

    def inflight_of(self, scope: str) -> str:
        """Hash: job id → when it was handed out; removed once its outcome has been read."""
        return f"{self.prefix}:{scope}:inflight"


# --- jobs --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WireJob:
    job: Job
    want_tiles: bool = False
    """Send the tiles back too (the bot saves them to its output folder)."""
    scope: str = "bot"
    """Whose job it is (see :class:`Keys`)."""


def encode_job(wire: WireJob) -> dict[bytes, bytes]:
    """Stream fields for a job entry."""
    request = asdict(wire.job.request)
    request["kind"] = wire.job.request.kind.value
    request["suffixes"] = list(wire.job.request.suffixes)
    body = {
        "v": WIRE_VERSION,
        "id": wire.job.id,
        "request": request,
        "want_tiles": wire.want_tiles,
        "scope": wire.scope,
    }
    return {b"job": json.dumps(body, ensure_ascii=False).encode()}


def _body(raw: bytes, what: str) -> Any:
    """A JSON body of this wire version (``WireError`` for another one)."""
    body = json.loads(raw)
    if body.get("v") != WIRE_VERSION:
        raise WireError(f"{what} of wire version {body.get('v')!r}, this one speaks {WIRE_VERSION}")
    return body


def decode_job(fields: dict[bytes, bytes]) -> WireJob:
    """The job of a stream entry. Raises :class:`WireError`."""
    try:
        body = _body(fields[b"job"], "job")
        data = dict(body["request"])
        data["kind"] = JobKind(data["kind"])
        data["suffixes"] = tuple(data["suffixes"])
        scope = str(body["scope"])
        if not SCOPE.fullmatch(scope):
            raise WireError(f"bad scope {scope!r}")
        return WireJob(Job(id=int(body["id"]), request=JobRequest(**data)), bool(body.get("want_tiles")), scope)
    except WireError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a job entry: {exc!r}") from None


def job_id_of(fields: dict[bytes, bytes]) -> tuple[int, str] | None:
    """The job id and scope of an entry, even a malformed one, when they can be read at all."""
    try:
        body = json.loads(fields[b"job"])
        scope = str(body.get("scope", "bot"))
        return (int(body["id"]), scope) if SCOPE.fullmatch(scope) else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


# --- events ------------------------------------------------------------------------------------


def encode_event(event: Event, *, worker: str) -> dict[bytes, bytes | str | int | float]:
    """Stream fields for one event (a :class:`Done` is sent as ``done``; its images are in the result hash)."""
    fields: dict[bytes, bytes | str | int | float] = {b"worker": worker}
    if isinstance(event, Started):
        fields[b"type"] = "started"
    elif isinstance(event, Loading):
        fields.update({b"type": "loading", b"model": event.model})
    elif isinstance(event, Progress):
        fields.update({b"type": "progress", b"step": event.step, b"total": event.total, b"elapsed": event.elapsed})
    elif isinstance(event, Preview):
        fields.update({b"type": "preview", b"step": event.step, b"image": event.image})
    elif isinstance(event, Done):
        fields[b"type"] = "done"
    elif isinstance(event, Failed):
        fields.update({b"type": "failed", b"reason": event.reason.to_json()})
    elif isinstance(event, Cancelled):
        fields[b"type"] = "cancelled"
    else:
        raise WireError(f"{type(event).__name__} does not cross the wire")
    return fields


def event_type(fields: dict[bytes, bytes]) -> str:
    return fields.get(b"type", b"").decode()


def decode_event(fields: dict[bytes, bytes]) -> Started | Loading | Progress | Preview | Failed | Cancelled | None:
    """The event of a stream entry; None for ``dispatched`` and ``done`` (the caller reads the result)."""
    kind = event_type(fields)
    try:
        if kind == "started":
            return Started()
        if kind == "loading":
            return Loading(fields[b"model"].decode())
        if kind == "progress":
            return Progress(int(fields[b"step"]), int(fields[b"total"]), float(fields[b"elapsed"]))
        if kind == "preview":
            return Preview(int(fields[b"step"]), fields[b"image"])
        if kind == "failed":
            return Failed(Text.from_json(fields[b"reason"].decode()))
        if kind == "cancelled":
            return Cancelled()
        if kind in ("dispatched", "done"):
            return None
    except (KeyError, ValueError) as exc:
        raise WireError(f"bad {kind} event: {exc!r}") from None
    raise WireError(f"unknown event type {kind!r}")


# --- results -----------------------------------------------------------------------------------


def encode_result(result: JobResult, *, with_tiles: bool) -> dict[str, bytes]:
    """Hash fields for a result: the grid, the figures, and the tiles when asked for. Blocking (may encode)."""
    meta: dict[str, Any] = {
        "v": WIRE_VERSION,
        "job": result.job_id,
        "tiles": [[t.prompt, t.seed] for t in result.tiles],
        "elapsed": result.elapsed,
        "nsfw": list(result.nsfw),
        "count": len(result.images),
    }
    fields = {"meta": json.dumps(meta, ensure_ascii=False).encode(), "grid": result.grid_png}
    if with_tiles:
        fields.update({f"tile{i}": png for i, png in enumerate(result.images.pngs())})
    return fields


def decode_result(fields: dict[bytes, bytes]) -> JobResult:
    try:
        meta = _body(fields[b"meta"], "result")
        count = int(meta["count"])
        keys = [f"tile{i}".encode() for i in range(count)]
        images = Tiles.from_pngs([fields[k] for k in keys]) if all(k in fields for k in keys) else _NotSent(count)
        return JobResult(
            job_id=int(meta["job"]),
            tiles=tuple(Tile(prompt, int(seed)) for prompt, seed in meta["tiles"]),
            grid_png=fields[b"grid"],
            images=images,
            elapsed=float(meta["elapsed"]),
            nsfw=tuple(bool(f) for f in meta["nsfw"]),
        )
    except WireError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a result: {exc!r}") from None


class _NotSent(Tiles):
    """Tiles a worker was not asked to send: their number is known, their pixels are not."""

    __slots__ = ("_count",)

    def __init__(self, count: int) -> None:
        super().__init__()
        self._count = count

    def __len__(self) -> int:
        return self._count

    def pngs(self) -> tuple[bytes, ...]:
        raise LookupError("the worker did not send this job's tiles (only the grid was needed)")

    def images(self) -> list[Any]:
        return list(self.pngs())
