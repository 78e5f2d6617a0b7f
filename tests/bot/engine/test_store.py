import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import GenerationSettings
from bot.engine.store import Store
from bot.inputs import imagine_request, refine_request
from bot.jobs import JobStatus, Tile


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Store]:
    store = await Store.open(path)
    try:
        yield store
    finally:
        await store.close()


async def test_jobs_and_tiles_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state" / "seedgrid.db"
    request = imagine_request(GenerationSettings(), prompt="a cat", seed=41, user_id=5, guild_id=6, channel_id=7)
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
        parent = await store.create_job(imagine_request(GenerationSettings(), prompt="a cat", seed=1))
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
