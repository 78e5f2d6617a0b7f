"""The SQLite store (``bot/engine/store.py``): jobs and their tiles survive reopening the file."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from bot.engine.store import SCHEMA_VERSION, Store
from bot.inputs import imagine_request, refine_request
from bot.jobs import JobStatus, Tile
from tests.presets import SD15


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Store]:
    store = await Store.open(path)
    try:
        yield store
    finally:
        await store.close()


async def test_jobs_and_tiles_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "seedgrid.db"
    request = imagine_request(SD15, prompt="a cat", seed=41, user_id=5, guild_id=6, channel_id=7)
    async with opened(path) as store:
        job = await store.create_job(request)
        await store.set_message(job.id, 1234)
        await store.mark_running(job.id)
    async with opened(path) as store:
        again = await store.get_job(job.id)
        assert again is not None
        assert again.request == request
        assert again.message_id == 1234
        assert again.status is JobStatus.RUNNING
        assert await store.get_tile(job.id, 4) == Tile("a cat", 44)
        assert await store.get_tile(job.id, 5) is None
        assert await store.get_job(job.id + 1) is None
        finished = await store.finished_since(0)
        assert finished == []


async def test_refine_tiles_are_stored_per_suffix(tmp_path: Path) -> None:
    async with opened(tmp_path / "db.sqlite") as store:
        parent = await store.create_job(imagine_request(SD15, prompt="a cat", seed=1))
        tile = await store.get_tile(parent.id, 2)
        assert tile is not None
        child = await store.create_job(
            refine_request(parent.request, parent_job=parent.id, tile_index=2, tile=tile, suffixes=(", a", ", b"))
        )
        assert await store.get_tile(child.id, 1) == Tile("a cat, a", 2)
        assert await store.get_tile(child.id, 2) == Tile("a cat, b", 2)
        await store.mark_finished(child.id, JobStatus.FAILED, error="boom")
        failed = await store.get_job(child.id)
        assert failed is not None and failed.status is JobStatus.FAILED


V3_SCHEMA = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL, prompt TEXT NOT NULL,
    negative TEXT NOT NULL, seed INTEGER NOT NULL, steps INTEGER NOT NULL, guidance REAL NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, suffixes TEXT NOT NULL, user_id INTEGER NOT NULL,
    guild_id INTEGER, channel_id INTEGER, parent_job INTEGER REFERENCES jobs(id), parent_tile INTEGER,
    message_id INTEGER, created_at REAL NOT NULL, started_at REAL, finished_at REAL, elapsed REAL, error TEXT,
    delivered_at REAL, policy TEXT NOT NULL DEFAULT 'allow'
);
CREATE INDEX jobs_status ON jobs(status);
CREATE TABLE tiles (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, idx INTEGER NOT NULL, prompt TEXT NOT NULL,
    seed INTEGER NOT NULL, PRIMARY KEY (job_id, idx)
);
INSERT INTO jobs (kind, status, prompt, negative, seed, steps, guidance, width, height, suffixes, user_id,
                  guild_id, channel_id, message_id, created_at)
    VALUES ('imagine', 'done', 'an old job', '', 9, 2, 7.5, 64, 64, '[]', 5, 6, 7, 8, 1.0);
INSERT INTO tiles VALUES (1, 1, 'an old job', 9);
PRAGMA user_version = 3;
"""


async def test_a_version_3_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file written before delivery reconciliation keeps its jobs, and gains the new columns."""
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as db:
        await db.executescript(V3_SCHEMA)
        await db.commit()
    async with opened(path) as store:
        (old,) = await store.undelivered()
        assert (old.id, old.request.prompt, old.message_id, old.delivery_started_at) == (1, "an old job", 8, None)
        assert (old.request.model, old.request.model_id) == ("", "")  # drawn by the default model of its time
        await store.set_message(old.id, 8, reply_token="token", token_at=2.0)
        await store.mark_delivering(old.id)
        assert await store.waiting_for_delivery() == 1
        await store.mark_delivered(old.id, 10)
        assert await store.undelivered() == []
    async with aiosqlite.connect(path) as db, db.execute("PRAGMA user_version") as cursor:
        assert await cursor.fetchone() == (SCHEMA_VERSION,)
    async with opened(path) as store:
        again = await store.get_job(1)
        assert again is not None and again.message_id == 10 and again.reply_token is None  # cleared once posted


V5_SCHEMA = V3_SCHEMA.replace(
    "delivered_at REAL, policy TEXT NOT NULL DEFAULT 'allow'",
    "delivered_at REAL, policy TEXT NOT NULL DEFAULT 'allow', delivery_started_at REAL, reply_token TEXT,"
    " reply_token_at REAL, model TEXT NOT NULL DEFAULT '', model_id TEXT NOT NULL DEFAULT ''",
).replace("PRAGMA user_version = 3;", "PRAGMA user_version = 5;")


async def test_a_version_5_file_gains_the_recipes_table(tmp_path: Path) -> None:
    """Recipes are kept per job (and found by the job's message); older jobs simply have none, and gain the
    columns of jobs drawn from a source tile."""
    path = tmp_path / "v5.db"
    async with aiosqlite.connect(path) as db:
        await db.executescript(V5_SCHEMA)
        await db.commit()
    async with opened(path) as store:
        old = await store.get_job(1)
        assert old is not None and (old.request.strength, old.request.source) == (0.0, "")  # drawn from noise
        assert old.request.locale == ""  # the language was not known then
        assert await store.get_recipe(1) is None
        assert await store.recipe_of_message(8) is None
        await store.set_recipe(1, '{"kind": "imagine"}')
        await store.set_recipe(1, '{"kind": "imagine", "again": true}')  # a re-run replaces it
    async with aiosqlite.connect(path) as db, db.execute("PRAGMA user_version") as cursor:
        assert await cursor.fetchone() == (SCHEMA_VERSION,)
    async with opened(path) as store:
        assert await store.get_recipe(1) == '{"kind": "imagine", "again": true}'
        assert await store.recipe_of_message(8) == (1, '{"kind": "imagine", "again": true}')
        assert await store.recipe_of_message(9) is None


async def test_a_job_drawn_from_a_source_tile_survives_reopening(tmp_path: Path) -> None:
    from dataclasses import replace

    from bot.jobs import JobKind

    request = replace(
        imagine_request(SD15, prompt="a cat", seed=41), kind=JobKind.VARY, strength=0.4, source='{"kind": "x"}'
    )
    async with opened(tmp_path / "db.sqlite") as store:
        job = await store.create_job(request)
    async with opened(tmp_path / "db.sqlite") as store:
        again = await store.get_job(job.id)
        assert again is not None and again.request == request
