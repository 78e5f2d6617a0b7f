"""The embedded state: jobs and their tiles in one SQLite file (aiosqlite, WAL).

A job row is written before the member's interaction is acknowledged, so the buttons on any
message the bot ever posted can find their job and tile seeds again after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Self

import aiosqlite

from bot.jobs import GRID_TILES, Job, JobKind, JobRequest, JobStatus, Tile

log = logging.getLogger(__name__)

SCHEMA_VERSION = 9

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    prompt      TEXT    NOT NULL,
    negative    TEXT    NOT NULL,
    seed        INTEGER NOT NULL,
    steps       INTEGER NOT NULL,
    guidance    REAL    NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    suffixes    TEXT    NOT NULL,          -- JSON list
    user_id     INTEGER NOT NULL,
    guild_id    INTEGER,
    channel_id  INTEGER,
    parent_job  INTEGER REFERENCES jobs(id),
    parent_tile INTEGER,
    message_id  INTEGER,
    created_at  REAL    NOT NULL,
    started_at  REAL,
    finished_at REAL,
    elapsed     REAL,
    error       TEXT,
    delivered_at REAL,                    -- when the outcome was posted (exactly-once delivery)
    policy      TEXT    NOT NULL DEFAULT 'allow',  -- allow | blur | spoiler for flagged tiles
    delivery_started_at REAL,             -- the outcome's post was sent (it may be on Discord already)
    reply_token TEXT,                     -- how the front end reaches the job's message (cleared once posted)
    reply_token_at REAL,
    model       TEXT    NOT NULL DEFAULT '',  -- the configured model's name ('' = the default of the time)
    model_id    TEXT    NOT NULL DEFAULT '',  -- its Hub id or folder when the job was made
    strength    REAL    NOT NULL DEFAULT 0,   -- image-to-image strength (jobs drawn from a source tile)
    source      TEXT    NOT NULL DEFAULT '',  -- that source tile's recipe (JSON), '' for none
    locale      TEXT    NOT NULL DEFAULT '',  -- the member's Discord locale, for the job's messages
    private     INTEGER NOT NULL DEFAULT 0,   -- 1: shown to the member only (ephemeral, else a direct message)
    upscaler    TEXT    NOT NULL DEFAULT '',  -- the dedicated upscaler's id or folder ('' = the hires pass)
    noise_level INTEGER NOT NULL DEFAULT 0    -- the noise that upscaler adds to the tile first
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS server_settings (   -- /settings: a server's defaults and policies
    guild_id   INTEGER NOT NULL,
    name       TEXT    NOT NULL,                -- steps, model, …, nsfw:<channel id>
    value      TEXT    NOT NULL,                -- JSON
    changed_by INTEGER NOT NULL,
    changed_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, name)
);
CREATE TABLE IF NOT EXISTS member_preferences (  -- /preferences: a member's own defaults
    user_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,                -- steps, model, …
    value      TEXT    NOT NULL,                -- JSON
    changed_at REAL    NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE INDEX IF NOT EXISTS jobs_member ON jobs(user_id, created_at);
CREATE INDEX IF NOT EXISTS jobs_message ON jobs(message_id);
CREATE TABLE IF NOT EXISTS tiles (
    job_id  INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx     INTEGER NOT NULL,                -- 1-based, as on the buttons
    prompt  TEXT    NOT NULL,
    seed    INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS recipes (         -- what made a job's images (bot.imaging.recipe), since Discord
    job_id  INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,  -- may serve copies without chunks
    recipe  TEXT    NOT NULL                 -- the PNG's seedgrid chunk (JSON)
);
"""

_REQUEST_COLUMNS = (
    "kind", "prompt", "negative", "seed", "steps", "guidance", "width", "height", "suffixes",
    "user_id", "guild_id", "channel_id", "parent_job", "parent_tile", "policy", "model", "model_id", "strength",
    "source", "locale", "private", "upscaler", "noise_level",
)  # fmt: skip
"""The columns that hold a :class:`JobRequest`, named as its fields."""
_STATE_COLUMNS = (
    "id", "status", "message_id", "started_at", "finished_at", "delivery_started_at", "reply_token", "reply_token_at",
    "error",
)  # fmt: skip
_JOB_COLUMNS = ", ".join(_STATE_COLUMNS + _REQUEST_COLUMNS)


def _request_row(request: JobRequest) -> tuple[Any, ...]:
    values = {name: getattr(request, name) for name in _REQUEST_COLUMNS}
    values["kind"] = request.kind.value
    values["suffixes"] = json.dumps(list(request.suffixes))
    return tuple(values[name] for name in _REQUEST_COLUMNS)


def _job_from_row(row: Any) -> Job:
    state = dict(zip(_STATE_COLUMNS, row[: len(_STATE_COLUMNS)], strict=True))
    state["status"] = JobStatus(state["status"])
    fields = dict(zip(_REQUEST_COLUMNS, row[len(_STATE_COLUMNS) :], strict=True))
    fields["kind"] = JobKind(fields["kind"])
    fields["suffixes"] = tuple(json.loads(fields["suffixes"]))
    fields["private"] = bool(fields["private"])
    return Job(request=JobRequest(**fields), **state)


class Store:
    """Async access to the SQLite file. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        # One connection, one transaction at a time: without this, two jobs written concurrently
        # interleave their statements and one commit (or rollback) would take the other's with it.
        self._write = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Self:  # noqa: PLR0912 - one branch per schema version
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.executescript(_SCHEMA)
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = row[0] if row else 0
        if 0 < version < 2:  # a version-1 file predates exactly-once delivery
            await db.execute("ALTER TABLE jobs ADD COLUMN delivered_at REAL")
        if 0 < version < 3:  # and the content policy
            await db.execute("ALTER TABLE jobs ADD COLUMN policy TEXT NOT NULL DEFAULT 'allow'")
        if 0 < version < 4:  # and reconciling a delivery a crash interrupted
            for column in ("delivery_started_at REAL", "reply_token TEXT", "reply_token_at REAL"):
                await db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
            # failed and cancelled jobs now count as undelivered until their message says so; those of
            # earlier versions were settled (said so, or never acknowledged)
            await db.execute(
                "UPDATE jobs SET delivered_at = COALESCE(finished_at, created_at)"
                " WHERE delivered_at IS NULL AND status IN ('failed', 'cancelled')"
            )
        if 0 < version < 5:  # and the model that draws it (jobs made before: the default model)
            for column in ("model TEXT NOT NULL DEFAULT ''", "model_id TEXT NOT NULL DEFAULT ''"):
                await db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
        if 0 < version < 6:  # and jobs drawn from a source tile (the recipes table is made above, as in new files)
            for column in ("strength REAL NOT NULL DEFAULT 0", "source TEXT NOT NULL DEFAULT ''"):
                await db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
        if 0 < version < 7:  # and the language of the member who asked for it
            await db.execute("ALTER TABLE jobs ADD COLUMN locale TEXT NOT NULL DEFAULT ''")
        if 0 < version < 8:  # and whether it is shown to the member only
            await db.execute("ALTER TABLE jobs ADD COLUMN private INTEGER NOT NULL DEFAULT 0")
        if 0 < version < 9:  # and the dedicated upscaler that enlarges it
            for column in ("upscaler TEXT NOT NULL DEFAULT ''", "noise_level INTEGER NOT NULL DEFAULT 0"):
                await db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
        await db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        await db.commit()
        log.debug("store opened at %s", path)
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def writable(self) -> bool:
        """Whether a write would go through now: the write lock is taken and given back, nothing changes."""
        async with self._write:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                await self._db.rollback()
            except aiosqlite.Error as exc:
                log.warning("the store cannot be written: %s", exc)
                return False
        return True

    async def create_job(self, request: JobRequest) -> Job:
        """Store a job and its tiles in one transaction; nothing is half-written on failure."""
        async with self._write:
            return await self._create_job(request)

    async def _create_job(self, request: JobRequest) -> Job:
        now = time.time()
        columns = ", ".join((*_REQUEST_COLUMNS, "status", "created_at"))
        marks = ", ".join("?" for _ in range(len(_REQUEST_COLUMNS) + 2))
        async with self._db.execute(
            f"INSERT INTO jobs ({columns}) VALUES ({marks})",
            (*_request_row(request), JobStatus.QUEUED.value, now),
        ) as cursor:
            job_id = cursor.lastrowid
        assert job_id is not None
        try:
            await self._db.executemany(
                "INSERT INTO tiles (job_id, idx, prompt, seed) VALUES (?, ?, ?, ?)",
                [(job_id, i, t.prompt, t.seed) for i, t in enumerate(request.tiles(), start=1)],
            )
            await self._db.commit()
        except BaseException:
            await self._db.rollback()
            raise
        return Job(id=job_id, request=request)

    async def get_job(self, job_id: int) -> Job | None:
        async with self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _job_from_row(row)

    async def get_tile(self, job_id: int, index: int) -> Tile | None:
        """Tile ``index`` (1-based, as numbered on the grid) of a job, or None."""
        async with self._db.execute(
            "SELECT prompt, seed FROM tiles WHERE job_id = ? AND idx = ?", (job_id, index)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else Tile(prompt=row[0], seed=row[1])

    async def set_recipe(self, job_id: int, recipe: str) -> None:
        """Keep the recipe of a job's images (the ``seedgrid`` chunk's JSON)."""
        async with self._write:
            await self._db.execute(
                "INSERT INTO recipes (job_id, recipe) VALUES (?, ?)"
                " ON CONFLICT(job_id) DO UPDATE SET recipe = excluded.recipe",
                (job_id, recipe),
            )
            await self._db.commit()

    async def get_recipe(self, job_id: int) -> str | None:
        async with self._db.execute("SELECT recipe FROM recipes WHERE job_id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def recipe_of_message(self, message_id: int) -> tuple[int, str] | None:
        """``(job id, recipe)`` of the job whose outcome is on message ``message_id``."""
        async with self._db.execute(
            "SELECT jobs.id, recipes.recipe FROM jobs JOIN recipes ON recipes.job_id = jobs.id"
            " WHERE jobs.message_id = ? ORDER BY jobs.id DESC LIMIT 1",
            (message_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    async def finished_since(self, since: float) -> list[float]:
        """Run times (seconds) of the jobs finished successfully since ``since`` (a ``time.time()``)."""
        async with self._db.execute(
            "SELECT elapsed FROM jobs WHERE status = ? AND finished_at >= ? AND elapsed IS NOT NULL",
            (JobStatus.DONE.value, since),
        ) as cursor:
            rows = await cursor.fetchall()
        return [float(r[0]) for r in rows]

    async def mark_running(self, job_id: int) -> None:
        await self._update(job_id, status=JobStatus.RUNNING.value, started_at=time.time())

    async def mark_finished(
        self, job_id: int, status: JobStatus, *, elapsed: float | None = None, error: str | None = None
    ) -> None:
        await self._update(job_id, status=status.value, finished_at=time.time(), elapsed=elapsed, error=error)

    async def set_message(
        self, job_id: int, message_id: int, *, reply_token: str | None = None, token_at: float | None = None
    ) -> None:
        await self._update(job_id, message_id=message_id, reply_token=reply_token, reply_token_at=token_at)

    async def mark_delivering(self, job_id: int) -> None:
        """The outcome is about to be posted: after a crash from here on, look on Discord before posting again."""
        await self._update(job_id, delivery_started_at=time.time())

    async def waiting_for_delivery(self) -> int:
        """Jobs whose outcome is being posted (or retried) right now."""
        async with self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE delivered_at IS NULL AND delivery_started_at IS NOT NULL AND status = ?",
            (JobStatus.DONE.value,),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def mark_delivered(self, job_id: int, message_id: int | None) -> None:
        """The outcome is posted: a restart will not run or post this job again."""
        if message_id is None:
            await self._update(job_id, delivered_at=time.time(), reply_token=None)
        else:
            await self._update(job_id, delivered_at=time.time(), message_id=message_id, reply_token=None)

    async def mark_undeliverable(self, job_id: int, reason: str) -> None:
        """Discord refused the outcome for good (or for too long): the job failed, and is not posted again."""
        await self._update(
            job_id, status=JobStatus.FAILED.value, error=reason, delivered_at=time.time(), reply_token=None
        )

    async def undelivered(self) -> list[Job]:
        """Jobs accepted but whose outcome was never posted (any status: a cancelled or failed job's message
        must still say so), oldest first."""
        async with self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE delivered_at IS NULL ORDER BY id"
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job_from_row(r) for r in rows]

    async def server_settings(self, guild_id: int | None = None) -> list[tuple[int, str, str]]:
        """Every server's settings (or one server's) as ``(guild id, name, JSON value)`` (a few rows per server)."""
        query = "SELECT guild_id, name, value FROM server_settings"
        args: tuple[int, ...] = ()
        if guild_id is not None:
            query, args = f"{query} WHERE guild_id = ?", (guild_id,)
        async with self._db.execute(query, args) as cursor:
            rows = await cursor.fetchall()
        return [(int(guild), str(name), str(value)) for guild, name, value in rows]

    async def set_server_setting(self, guild_id: int, name: str, value: str | None, *, by: int) -> None:
        """Set (or with None, remove) one of a server's settings, recording who changed it."""
        async with self._write:
            if value is None:
                await self._db.execute("DELETE FROM server_settings WHERE guild_id = ? AND name = ?", (guild_id, name))
            else:
                await self._db.execute(
                    "INSERT INTO server_settings (guild_id, name, value, changed_by, changed_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (guild_id, name) DO UPDATE SET value = excluded.value,"
                    " changed_by = excluded.changed_by, changed_at = excluded.changed_at",
                    (guild_id, name, value, by, time.time()),
                )
            await self._db.commit()

    async def preferences(self, user_id: int) -> list[tuple[str, str]]:
        """A member's preferences as ``(name, JSON value)`` rows."""
        async with self._db.execute(
            "SELECT name, value FROM member_preferences WHERE user_id = ?", (user_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(str(name), str(value)) for name, value in rows]

    async def set_preference(self, user_id: int, name: str, value: str | None) -> None:
        """Set (or with None, remove) one of a member's preferences."""
        async with self._write:
            if value is None:
                await self._db.execute("DELETE FROM member_preferences WHERE user_id = ? AND name = ?", (user_id, name))
            else:
                await self._db.execute(
                    "INSERT INTO member_preferences (user_id, name, value, changed_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value,"
                    " changed_at = excluded.changed_at",
                    (user_id, name, value, time.time()),
                )
            await self._db.commit()

    async def images_since(self, guild_id: int, user_id: int, since: float) -> int:
        """Images a member's jobs in a server asked for since ``since`` (a ``time.time()``): waiting, running
        or done — a cancelled job, or one that failed (through no fault of the member), does not count."""
        async with self._db.execute(
            "SELECT kind, suffixes FROM jobs WHERE guild_id = ? AND user_id = ? AND created_at >= ?"
            " AND status IN ('queued', 'running', 'done')",
            (guild_id, user_id, since),
        ) as cursor:
            rows = await cursor.fetchall()
        return sum(len(json.loads(suffixes)) if kind == JobKind.REFINE.value else GRID_TILES for kind, suffixes in rows)

    async def gpu_seconds_since(self, guild_id: int, user_id: int, since: float) -> float:
        """GPU-seconds a member's jobs in a server took since ``since``: the run times of the jobs that finished
        with their images — a cancelled job, or one that failed (through no fault of the member), does not count."""
        async with self._db.execute(
            "SELECT COALESCE(SUM(elapsed), 0) FROM jobs WHERE guild_id = ? AND user_id = ? AND created_at >= ?"
            " AND status = 'done'",
            (guild_id, user_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row else 0.0

    async def _update(self, job_id: int, **values: object) -> None:
        assignments = ", ".join(f"{column} = ?" for column in values)
        async with self._write:
            await self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))
            await self._db.commit()
