"""The bot's SQLite file seen from outside, as an admin with ``sqlite3`` would see it.

Tests use it to check what was (not) stored, or to delete a job behind the bot's back; the bot
itself only ever goes through :class:`bot.engine.Engine`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite


async def last_job_id(database: Path | str) -> int:
    """The highest job id stored so far (0 for an empty store)."""
    async with aiosqlite.connect(database) as db, db.execute("SELECT COALESCE(MAX(id), 0) FROM jobs") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def delivered(database: Path | str) -> dict[str, int | None]:
    """The prompt of every job whose outcome the bot has recorded as posted, and the message it posted.

    The bot records a delivery after the post, as the last thing it does for a job: once a job is
    here, nothing more of it will be posted (a restart does not run it again).
    """
    query = "SELECT prompt, message_id FROM jobs WHERE delivered_at IS NOT NULL"
    async with aiosqlite.connect(database) as db, db.execute(query) as cursor:
        rows = await cursor.fetchall()
    return {str(prompt): None if message_id is None else int(message_id) for prompt, message_id in rows}


async def delivered_jobs(database: Path | str) -> dict[int, int | None]:
    """As :func:`delivered`, by job id."""
    query = "SELECT id, message_id FROM jobs WHERE delivered_at IS NOT NULL"
    async with aiosqlite.connect(database) as db, db.execute(query) as cursor:
        rows = await cursor.fetchall()
    return {int(job_id): None if message_id is None else int(message_id) for job_id, message_id in rows}


async def delete_job(database: Path | str, job_id: int) -> bool:
    """Forget a job and its tiles (its buttons then answer that the grid is no longer known)."""
    async with aiosqlite.connect(database) as db:
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("UPDATE jobs SET parent_job = NULL WHERE parent_job = ?", (job_id,))
        async with db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)) as cursor:
            deleted = cursor.rowcount > 0
        await db.commit()
    return deleted


JOB_FIELDS = (
    "id", "kind", "status", "prompt", "suffixes", "user_id", "channel_id", "parent_job", "parent_tile",
    "message_id", "created_at", "started_at", "finished_at", "delivery_started_at", "delivered_at", "error",
)  # fmt: skip
"""The columns :func:`jobs` reads (the soak's accounting needs nothing else)."""


async def jobs(database: Path | str) -> list[dict[str, Any]]:
    """Every stored job, oldest first, as ``{column: value}`` for the columns in :data:`JOB_FIELDS`.

    A plain read: it can be called while the bot writes, or after it was killed mid-write.
    """
    query = f"SELECT {', '.join(JOB_FIELDS)} FROM jobs ORDER BY id"
    async with aiosqlite.connect(database) as db, db.execute(query) as cursor:
        rows = await cursor.fetchall()
    return [dict(zip(JOB_FIELDS, row, strict=True)) for row in rows]
