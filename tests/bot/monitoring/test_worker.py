"""A Redis worker's endpoint (``bot/monitoring/health.py``'s ``serve_worker``) reports its claims and dead
letters, over real HTTP, against a real redis-server. A dead worker is played as in
``tests/bot/remote/test_redis_backend.py``: a consumer that reads a job and never acknowledges it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.config import Settings, parse_settings
from bot.engine import Done, Failed, LocalBackend
from bot.engine.models import Catalogue
from bot.jobs import Job
from bot.monitoring.health import serve_worker
from bot.monitoring.metrics import Metrics
from bot.remote.connection import connect
from bot.remote.dispatcher import RedisBackend
from bot.remote.wire import Keys
from bot.remote.worker import Worker
from tests import polling
from tests.bot.monitoring.test_metrics import a_request
from tests.conftest import config_text, redis_extra
from tests.metrics_probe import get_json, scrape
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)


async def silent_for(client: aioredis.Redis, keys: Keys, seconds: float) -> None:
    async def idle() -> bool:
        pending = await client.xpending_range(keys.jobs_for("model"), keys.group, min="-", max="+", count=10)
        return bool(pending) and all(entry["time_since_delivered"] > seconds * 1000 for entry in pending)

    await polling.until(idle, within=30, every=0.05, what=f"pending jobs idle for {seconds} s")


@pytest.fixture
async def redis_settings(redis_server: RedisServer, tiny_model: Path, tmp_path: Path) -> Settings:
    extra = redis_extra(redis_server.url, redis_server.prefix(), claim_idle=1.0, max_deliveries=2)
    return parse_settings(config_text(tiny_model, tmp_path / "db.sqlite", extra=extra))


@pytest.fixture
async def dispatcher(redis_settings: Settings) -> AsyncIterator[tuple[RedisBackend, aioredis.Redis]]:
    backend = RedisBackend(redis_settings.redis, Catalogue.resolve(redis_settings), redis_settings.executor)
    await backend.start()
    client = await connect(redis_settings.redis)
    yield backend, client
    await backend.close(grace=0)
    await client.aclose()


async def test_a_worker_s_endpoint_reports_its_claims_and_dead_letters(
    redis_settings: Settings, dispatcher: tuple[RedisBackend, aioredis.Redis]
) -> None:
    bot_side, client = dispatcher
    keys = bot_side.keys
    metrics = Metrics.for_settings(redis_settings, role="worker")
    local = LocalBackend.from_settings(redis_settings, Catalogue.resolve(redis_settings), observer=metrics)
    worker_client = await connect(redis_settings.redis)
    endpoint = serve_worker("127.0.0.1:0", metrics, redis_settings.metrics, local, worker_client)
    worker: Worker | None = None
    running: asyncio.Task[None] | None = None
    try:
        assert (await get_json(f"{endpoint.url}/readyz"))[1]["checks"] == {"model": False, "redis": True}
        await local.start()
        assert await get_json(f"{endpoint.url}/readyz") == (
            200,
            {"ready": True, "checks": {"model": True, "redis": True}},
        )

        # two workers take a job each and die (their heartbeat once, their read, then silence)
        seconds, _ = await client.time()
        await client.zadd(keys.workers, {"doomed": seconds, "doomed-too": seconds})

        async def both_alive() -> bool:
            await bot_side.refresh_workers()
            return len(bot_side.workers) == 2

        await polling.until(both_alive, within=30, what="the doomed workers")
        claimed = bot_side.submit(Job(1, a_request(1, steps=1)))
        lost = bot_side.submit(Job(2, a_request(2, steps=1)))
        await polling.until(lambda: len(bot_side.running) == 2, within=30, what="both jobs handed out")
        taken = await client.xreadgroup(keys.group, "doomed", {keys.jobs_for("model"): ">"}, count=2, block=5000)
        assert len(taken[0][1]) == 2
        await silent_for(client, keys, 1.0)
        # job 2 was taken over once more by a worker that died too: its second delivery, the last allowed
        again = await client.xclaim(
            keys.jobs_for("model"), keys.group, "second-victim", min_idle_time=0, message_ids=[taken[0][1][1][0]]
        )
        assert again
        await silent_for(client, keys, 1.0)
        # ours claims job 1 (delivery 2 of 2) and runs it, and sets job 2 aside

        worker = Worker(local, worker_client, redis_settings.redis, name="watched", observer=metrics)
        running = asyncio.create_task(worker.run())
        assert isinstance(await asyncio.wait_for(claimed.wait(), 60), Done)
        assert isinstance(await asyncio.wait_for(lost.wait(), 60), Failed)
        seen = await scrape(endpoint.url)
    finally:
        if worker is not None and running is not None:
            worker.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(running, 10)
        await local.close(grace=0)
        await worker_client.aclose()
        await asyncio.to_thread(endpoint.stop)
    assert seen.value("seedgrid_worker_claims_total") == 1
    assert seen.value("seedgrid_worker_dead_letters_total", reason="deliveries") == 1
    assert seen.value("seedgrid_jobs_finished_total", outcome="done") == 1
    assert seen.value("seedgrid_job_run_seconds_count") == 1
    assert seen.has("seedgrid_build_info", role="worker", backend="redis")
    assert seen.value("seedgrid_models_loaded", device="cpu", model="model") == 1
