"""Workers that serve some of the configured models, against a real redis-server: one job stream per
model, each job on a worker that serves its model, and a job no live worker can run failing at once
(``bot/remote/dispatcher.py``, ``bot/remote/worker.py``); ``seedgrid worker --models`` and
``Catalogue.only`` behind it.

Two distinct models are the session's tiny model configured twice, as ``a`` (the default) and ``b``:
the catalogue resolves both, and each worker's device loads only the ones it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.config import Settings, parse_settings
from bot.diffusion.families import SD1, SDXL
from bot.engine import Done, Failed, Loading, LocalBackend
from bot.engine.models import Catalogue
from bot.inputs import imagine_request
from bot.jobs import Job
from bot.remote.connection import connect
from bot.remote.dispatcher import RedisBackend
from bot.remote.wire import Keys, WireJob, decode_event, encode_job
from bot.remote.worker import Worker
from bot.texts import text
from tests import polling
from tests.conftest import config_text, redis_extra
from tests.presets import preset_of
from tests.redis_server import RedisServer

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).parents[3]


def two_models(model: Path) -> str:
    return f"""
[[models]]
name = "a"
id = "{model}"

[[models]]
name = "b"
id = "{model}"
"""


def two_model_settings(server: RedisServer, model: Path, tmp_path: Path) -> Settings:
    extra = redis_extra(server.url, server.prefix()) + two_models(model)
    return parse_settings(config_text(None, tmp_path / "db.sqlite", extra=extra))


@pytest.fixture(scope="module")
async def devices(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, LocalBackend]]:
    """Started local backends, as ``run_worker`` builds them: serving ``a``, serving ``b``, and serving
    both with ``b`` first (its own default is ``b``: it loads only ``b`` at start)."""
    settings = parse_settings(
        config_text(None, tmp_path_factory.mktemp("devices") / "db", extra=two_models(tiny_model))
    )
    catalogue = Catalogue.resolve(settings)
    both_b_first = Catalogue(tuple(reversed(list(catalogue))))
    backends = {
        "a": LocalBackend.from_settings(settings, catalogue.only(["a"])),
        "b": LocalBackend.from_settings(settings, catalogue.only(["b"])),
        "ba": LocalBackend.from_settings(settings, both_b_first),
    }
    for backend in backends.values():
        await backend.start()
    yield backends
    for backend in backends.values():
        await backend.close(grace=0)


def job_for(settings: Settings, job_id: int, model: str) -> Job:
    request = imagine_request(preset_of(settings, model), prompt=f"job {job_id}", seed=job_id, steps=2)
    return Job(id=job_id, request=dataclasses.replace(request, user_id=job_id, model=model))


@contextlib.asynccontextmanager
async def running(
    settings: Settings, workers: Iterable[tuple[str, LocalBackend]]
) -> AsyncIterator[tuple[RedisBackend, aioredis.Redis]]:
    """A dispatcher on ``settings``' catalogue and in-process workers (name, device), all live."""
    dispatcher = RedisBackend(settings.redis, Catalogue.resolve(settings), settings.executor)
    await dispatcher.start()
    client = await connect(settings.redis)
    started: list[tuple[Worker, asyncio.Task[None], aioredis.Redis]] = []
    try:
        for name, backend in workers:
            worker_client = await connect(settings.redis)
            worker = Worker(backend, worker_client, settings.redis, name=name)
            started.append((worker, asyncio.create_task(worker.run()), worker_client))

        async def all_live() -> bool:
            await dispatcher.refresh_workers()
            return len(dispatcher.workers) == len(started)

        await polling.until(all_live, within=30, every=0.05, what="every worker registered")
        yield dispatcher, client
    finally:
        for worker, task, worker_client in started:
            worker.stop()
            await asyncio.wait_for(task, 10)
            await worker_client.aclose()
        await dispatcher.close(grace=0)
        await client.aclose()


async def events(client: aioredis.Redis, keys: Keys, job_id: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return list(await client.xrange(keys.events(job_id)))


async def started_by(client: aioredis.Redis, keys: Keys, job_id: int) -> list[str]:
    return [f[b"worker"].decode() for _, f in await events(client, keys, job_id) if f[b"type"] == b"started"]


async def test_each_job_runs_on_a_worker_that_serves_its_model(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, devices: dict[str, LocalBackend]
) -> None:
    settings = two_model_settings(redis_server, tiny_model, tmp_path)
    keys = Keys(settings.redis.prefix)
    async with running(settings, [("serves-a", devices["a"]), ("serves-b", devices["b"])]) as (dispatcher, client):
        # each advertises its models (and what it holds loaded), decoded back into tuples
        advertised = {w.name: (w.model.models, w.model.loaded) for w in dispatcher.workers}
        assert advertised == {"serves-a": (("a",), ("a",)), "serves-b": (("b",), ("b",))}
        assert dispatcher.info is not None and dispatcher.info.models == ("a", "b")
        models = {1: "a", 2: "b", 3: "", 4: "b", 5: "a"}  # "": the default model, a
        handles = [dispatcher.submit(job_for(settings, job_id, model)) for job_id, model in models.items()]
        outcomes = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 60)
        assert all(isinstance(o, Done) for o in outcomes), outcomes
        ran_on = {job_id: await started_by(client, keys, job_id) for job_id in models}
        assert ran_on == {1: ["serves-a"], 2: ["serves-b"], 3: ["serves-a"], 4: ["serves-b"], 5: ["serves-a"]}
        for model in ("a", "b"):
            assert await client.xlen(keys.jobs_for(model)) == 0  # acknowledged and deleted on its own stream
            assert await client.xpending(keys.jobs_for(model), keys.group) == {
                "pending": 0, "min": None, "max": None, "consumers": [],
            }  # fmt: skip


async def test_a_job_for_a_model_no_live_worker_serves_fails_at_once(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, devices: dict[str, LocalBackend]
) -> None:
    settings = two_model_settings(redis_server, tiny_model, tmp_path)
    keys = Keys(settings.redis.prefix)
    async with running(settings, [("serves-a", devices["a"])]) as (dispatcher, client):
        orphan = dispatcher.submit(job_for(settings, 1, "b"))
        outcome = await asyncio.wait_for(orphan.wait(), 10)  # not left waiting for a worker that may never come
        assert isinstance(outcome, Failed)
        assert str(outcome.reason) == text("failed.no_worker_for_model", model="b")
        assert await client.xlen(keys.jobs_for("b")) == 0  # never handed out
        assert dispatcher.running == [] and dispatcher.active_jobs(1) == 0  # its turn is over
        served = dispatcher.submit(job_for(settings, 2, "a"))  # the model that is served still runs
        assert isinstance(await asyncio.wait_for(served.wait(), 30), Done)


async def _two_jobs_on_a_worker_of_both_models(
    redis_server: RedisServer,
    tiny_model: Path,
    tmp_path: Path,
    devices: dict[str, LocalBackend],
    caplog: pytest.LogCaptureFixture,
    *,
    while_it_waits: bool,
) -> None:
    """Job 1 (for a) then job 2 (for b) on a worker serving both: each runs once, the older first, and job 1 on
    its own model. ``while_it_waits``: both arrive in one transaction while the worker's read blocks on both
    streams (so one read can hand it both); otherwise both wait before the worker starts."""
    settings = two_model_settings(redis_server, tiny_model, tmp_path)
    keys = Keys(settings.redis.prefix)
    client = await connect(settings.redis)
    worker_client = await connect(settings.redis)
    device = devices["ba"]
    assert device.info is not None and device.info.loaded == ("b",)  # its own default is b
    worker = Worker(device, worker_client, settings.redis, name="serves-both")
    task: asyncio.Task[None] | None = None
    # as the bot would put them there: job 1 (the default model, "" as stored) first, then job 2 for b
    first = encode_job(WireJob(job_for(settings, 1, "")))
    later = encode_job(WireJob(job_for(settings, 2, "b")))  # (ids apart: the same millisecond would tie)
    try:
        for model in ("a", "b"):
            await client.xgroup_create(keys.jobs_for(model), keys.group, id="0", mkstream=True)

        async def add_both() -> None:
            async with client.pipeline(transaction=True) as pipe:
                pipe.xadd(keys.jobs_for("a"), first, id="1000-0")  # type: ignore[arg-type]
                pipe.xadd(keys.jobs_for("b"), later, id="2000-0")  # type: ignore[arg-type]
                await pipe.execute()

        async def worker_blocks() -> bool:
            clients: Any = await client.client_list()
            return any(c.get("cmd") == "xreadgroup" and "b" in str(c.get("flags")) for c in clients)

        with caplog.at_level(logging.INFO, logger="bot.remote.worker"):
            if not while_it_waits:
                await add_both()
            task = asyncio.create_task(worker.run())
            if while_it_waits:
                await polling.until(worker_blocks, within=30, every=0.005, what="the worker waiting on both streams")
                await add_both()

            async def both_done() -> bool:
                kinds = [[f[b"type"] for _, f in await events(client, keys, i)] for i in (1, 2)]
                return all(b"done" in k for k in kinds)

            await polling.until(both_done, within=60, every=0.05, what="both jobs done")
        if not while_it_waits:  # the oldest waiting job is read from its stream alone: nothing is put back
            assert "read along with another one" not in caplog.text
        one, two = [await events(client, keys, i) for i in (1, 2)]
        assert [f[b"type"] for _, f in one].count(b"started") == 1
        assert [f[b"type"] for _, f in two].count(b"started") == 1
        done_1 = next(entry_id for entry_id, f in one if f[b"type"] == b"done")
        started_2 = next(entry_id for entry_id, f in two if f[b"type"] == b"started")
        assert _ms(started_2) >= _ms(done_1)  # one at a time, the older first
        # job 1 ran on its stream's model a, not on this worker's default b: a was loaded for it, and
        # the event that tells the member so crossed the wire
        assert [decode_event(f) for _, f in one if f[b"type"] == b"loading"] == [Loading("a")]
        for model in ("a", "b"):
            assert await client.xlen(keys.jobs_for(model)) == 0
    finally:
        worker.stop()
        if task is not None:
            await asyncio.wait_for(task, 10)
        await worker_client.aclose()
        await client.aclose()


async def test_jobs_waiting_in_two_streams_run_oldest_first_and_none_is_put_back(
    redis_server: RedisServer,
    tiny_model: Path,
    tmp_path: Path,
    devices: dict[str, LocalBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker of both models looks at the next waiting job of each stream and reads the oldest alone."""
    await _two_jobs_on_a_worker_of_both_models(
        redis_server, tiny_model, tmp_path, devices, caplog, while_it_waits=False
    )


async def test_jobs_arriving_together_while_it_waits_run_once_each_in_order(
    redis_server: RedisServer,
    tiny_model: Path,
    tmp_path: Path,
    devices: dict[str, LocalBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Jobs of two models arriving at once (one transaction) while the worker's read waits on both streams: Redis
    (7.x) wakes the read with one of them, and the next look takes the other; each runs once, the older first."""
    await _two_jobs_on_a_worker_of_both_models(redis_server, tiny_model, tmp_path, devices, caplog, while_it_waits=True)


def _ms(entry_id: Any) -> int:
    return int(bytes(entry_id).split(b"-")[0])


# --- choosing the models: Catalogue.only and the command line ------------------------------------

THREE = """
[[models]]
name = "sdxl"
id = "org/sdxl"

[[models]]
name = "sd15"
id = "org/sd15"

[[models]]
name = "flux"
id = "org/flux"
"""


def test_a_catalogue_narrowed_to_some_models_keeps_the_config_s_order() -> None:
    models = Catalogue.resolve(parse_settings(THREE), families={"org/sdxl": SDXL, "org/sd15": SD1, "org/flux": SD1})
    narrowed = models.only(["flux", "sdxl"])
    assert narrowed.names == ["sdxl", "flux"] and narrowed.default.name == "sdxl"
    assert narrowed.get("flux") is models.get("flux") and narrowed.get("sd15") is None
    assert models.only(["sd15"]).default.name == "sd15"  # what such a worker loads at start
    with pytest.raises(KeyError, match="nope"):
        models.only(["sdxl", "nope"])


def test_worker_refuses_models_the_config_does_not_have(tmp_path: Path) -> None:
    # an unreachable Redis: the names are checked first, before anything connects or loads
    extra = redis_extra("redis://127.0.0.1:1/0", "cli") + THREE
    config = tmp_path / "config.toml"
    config.write_text(config_text(None, tmp_path / "db.sqlite", extra=extra))

    def worker(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "bot", "worker", "--config", str(config), *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    result = worker("--models", "sd15,nope")
    assert result.returncode == 2, result.stderr
    assert "seedgrid: error: --models: the config has no model 'nope'; its models are sdxl, sd15, flux" in result.stderr
    assert "Redis" not in result.stderr and "Traceback" not in result.stderr
    result = worker("--models", " , ")
    assert result.returncode == 2 and "--models" in result.stderr and "separated by commas" in result.stderr
