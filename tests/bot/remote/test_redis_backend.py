"""The Redis backend against a real redis-server: the bot's ``RedisBackend`` (``bot/remote/dispatcher.py``)
and in-process workers (``Worker``, ``bot/remote/worker.py``).

A worker that "dies" is played by the test itself reading the job as a consumer and never
acknowledging it: to Redis that is exactly what a killed worker looks like (a pending entry whose
idle time grows). Real ``kill -9`` of worker processes is in ``tests/cogs/test_redis_workers_e2e.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.config import RedisSettings, Settings, parse_settings
from bot.diffusion.renderer import PipelineRenderer
from bot.engine import Cancelled, Done, Engine, Failed, Interrupted, JobHandle, LocalBackend, Progress, Queued, Started
from bot.engine.models import Catalogue
from bot.inputs import imagine_request
from bot.jobs import Job
from bot.remote.connection import RedisUnavailableError, connect, redact
from bot.remote.dispatcher import KEEP_AFTER_READ, RedisBackend
from bot.remote.wire import Keys
from bot.remote.worker import Worker
from tests import polling
from tests.conftest import config_text, redis_extra
from tests.presets import preset_of
from tests.redis_server import RedisServer, free_port, running_redis

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session")
async def worker_backends(settings: Settings) -> AsyncIterator[list[LocalBackend]]:
    """Two loaded tiny models, each an in-process ``LocalBackend`` a Worker can drive (reused by every test)."""
    load = partial(PipelineRenderer.load, settings.model, preview_every=2, safety_checker=True)
    backends = [LocalBackend({"cpu": load}, settings.executor) for _ in range(2)]
    for local in backends:
        await local.start()
    yield backends
    for local in backends:
        await local.close(grace=0)


def redis_settings(server: RedisServer, model: Path, tmp_path: Path, **options: Any) -> Settings:
    """The session's tiny model on the redis backend: the bot's catalogue names it as the workers do."""
    text = config_text(model, tmp_path / "db.sqlite", extra=redis_extra(server.url, server.prefix()))
    settings = parse_settings(text)
    return dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, **options))


def dispatcher_of(settings: Settings, **options: Any) -> RedisBackend:
    return RedisBackend(settings.redis, Catalogue.resolve(settings), settings.executor, **options)


def jobs_of(settings: Settings) -> str:
    """The job stream of the (one) configured model."""
    return Keys(settings.redis.prefix).jobs_for(settings.model_entries[0].name)


def a_job(settings: Settings, job_id: int, *, user: int = 1, steps: int = 2, size: str = "small") -> Job:
    request = imagine_request(preset_of(settings), prompt=f"job {job_id}", seed=job_id, steps=steps, size=size)
    # the workers here serve the session's tiny model: the job asks for "the default model"
    return Job(id=job_id, request=dataclasses.replace(request, user_id=user, model="", model_id=""))


class Workers:
    """In-process workers on the shared local backends, each with its own Redis client."""

    def __init__(self, settings: Settings, backends: Sequence[LocalBackend]) -> None:
        self.settings = settings
        self.backends = backends
        self.running: list[tuple[Worker, asyncio.Task[None], aioredis.Redis]] = []

    async def add(self, index: int, name: str | None = None) -> Worker:
        client = await connect(self.settings.redis)
        worker = Worker(self.backends[index], client, self.settings.redis, name=name or f"worker{index}")
        self.running.append((worker, asyncio.create_task(worker.run()), client))
        return worker

    async def close(self) -> None:
        for worker, task, client in self.running:
            worker.stop()
            done, _ = await asyncio.wait({task}, timeout=10)
            if not done:
                task.print_stack()
                task.cancel()
                raise AssertionError(f"{worker.name} did not stop within 10 s")
            await client.aclose()


@contextlib.asynccontextmanager
async def backend(
    settings: Settings, backends: Sequence[LocalBackend], workers: int = 1
) -> AsyncIterator[tuple[RedisBackend, Workers]]:
    dispatcher = dispatcher_of(settings)
    await dispatcher.start()
    pool = Workers(settings, backends)
    try:
        for i in range(workers):
            await pool.add(i)
        await until(lambda: len(dispatcher.workers) == workers, dispatcher)
        yield dispatcher, pool
    finally:
        await pool.close()
        await dispatcher.close(grace=0)


async def until(condition: Any, dispatcher: RedisBackend | None = None) -> None:
    deadline = asyncio.get_running_loop().time() + 30.0
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        if dispatcher is not None:
            await dispatcher.refresh_workers()
        await asyncio.sleep(0.05)


async def pending_idle(client: aioredis.Redis, keys: Keys, jobs: str, seconds: float) -> None:
    """Until every pending job of the stream ``jobs`` has gone unacknowledged for over ``seconds`` by
    Redis's own clock (what a worker that stopped sending heartbeats looks like)."""

    async def idle() -> bool:
        pending = await client.xpending_range(jobs, keys.group, min="-", max="+", count=10)
        return bool(pending) and all(entry["time_since_delivered"] > seconds * 1000 for entry in pending)

    await polling.until(idle, within=30, every=0.05, what=f"pending jobs idle for {seconds} s")


async def consumer_idle(client: aioredis.Redis, keys: Keys, jobs: str, name: str, seconds: float) -> None:
    """Until the consumer ``name`` of the stream ``jobs`` has done nothing for over ``seconds`` (Redis's clock)."""

    async def idle() -> bool:
        consumers = await client.xinfo_consumers(jobs, keys.group)
        return any(c["name"] == name.encode() and c["idle"] > seconds * 1000 for c in consumers)

    await polling.until(idle, within=30, every=0.05, what=f"consumer {name} idle for {seconds} s")


async def events_of(handle: JobHandle) -> list[Any]:
    return [event async for event in handle.events()]


async def test_a_job_through_redis_gives_the_bytes_of_the_local_backend(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend], engine: Engine
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    job = a_job(settings, 1, steps=3)
    local = await (await engine.submit(job.request)).result()
    async with backend(settings, worker_backends) as (dispatcher, _):
        handle = dispatcher.submit(job)
        events = await events_of(handle)
    kinds = [type(e) for e in events]
    assert kinds[0] is Queued and Started in kinds and kinds[-1] is Done
    assert [e.step for e in events if isinstance(e, Progress)][-1] == 3
    result = events[-1].result
    assert result.grid_png == local.grid_png  # byte for byte
    assert result.tiles == local.tiles and result.nsfw == local.nsfw
    with pytest.raises(LookupError, match="did not send"):
        result.images.pngs()  # not asked for: only the grid crossed Redis


async def test_nothing_accumulates_and_the_tiles_come_when_asked_for(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    dispatcher = dispatcher_of(settings, want_tiles=True)
    await dispatcher.start()
    pool = Workers(settings, worker_backends)
    await pool.add(0)
    try:
        handles = [dispatcher.submit(a_job(settings, i)) for i in range(1, 4)]
        results = [await h.result() for h in handles]
    finally:
        await pool.close()
        await dispatcher.close(grace=0)
    assert all(len(r.images.pngs()) == 4 for r in results)
    client = await connect(settings.redis)
    try:
        keys = dispatcher.keys
        assert await client.xlen(jobs_of(settings)) == 0  # acknowledged and deleted
        assert await client.hlen(keys.inflight_of("bot")) == 0
        for i in range(1, 4):
            for key in (keys.events(i), keys.result(i)):
                assert 0 < await client.ttl(key) <= KEEP_AFTER_READ  # read by the bot: kept briefly
        assert await client.zcard(keys.workers) == 0  # the worker left cleanly
        assert (await client.xinfo_groups(jobs_of(settings)))[0]["consumers"] == 0
    finally:
        await client.aclose()


async def test_fair_order_and_queue_positions_hold_across_redis(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    async with backend(settings, worker_backends) as (dispatcher, _):
        heavy = [dispatcher.submit(a_job(settings, i, user=1, steps=4)) for i in range(1, 5)]
        await heavy[0].started.wait()
        light = dispatcher.submit(a_job(settings, 10, user=2, steps=4))
        assert dispatcher.waiting[0].id == 10  # next, not after heavy's three
        assert dispatcher.active_jobs(1) == 4
        order: list[int] = []

        async def note(handle: JobHandle) -> None:
            await handle.started.wait()
            order.append(handle.job.id)

        await asyncio.gather(*(note(h) for h in [*heavy, light]))
        await asyncio.gather(*(h.wait() for h in [*heavy, light]))
    assert order == [1, 10, 2, 3, 4]
    positions = [e.position async for e in light.events() if isinstance(e, Queued)]
    assert positions == [1]


async def test_cancel_reaches_the_worker_and_stops_the_job_at_the_next_step(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    async with backend(settings, worker_backends) as (dispatcher, _):
        running = dispatcher.submit(a_job(settings, 1, steps=50))
        queued = dispatcher.submit(a_job(settings, 2, steps=2))
        async for event in running.events():
            if isinstance(event, Progress) and event.step >= 2:
                break
        dispatcher.cancel(running)
        dispatcher.cancel(queued)
        assert isinstance(await queued.wait(), Cancelled)  # still in the bot's queue: gone at once
        outcome = await asyncio.wait_for(running.wait(), 15)
        assert isinstance(outcome, Cancelled)
        steps = [e.step for e in [e async for e in running.events()] if isinstance(e, Progress)]
        assert not steps or steps[-1] < 50
        after = dispatcher.submit(a_job(settings, 3))  # the worker goes on with the next job
        assert isinstance(await after.wait(), Done)


async def test_a_job_whose_worker_died_is_claimed_and_finished_by_another(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend], engine: Engine
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path, claim_idle=1.0)
    dispatcher = dispatcher_of(settings)
    await dispatcher.start()
    client = await connect(settings.redis)
    keys = dispatcher.keys
    pool = Workers(settings, worker_backends)
    try:
        # a worker that takes the job and dies: a live heartbeat, one read, then silence
        seconds, _ = await client.time()
        await client.zadd(keys.workers, {"doomed": seconds})
        await until(lambda: len(dispatcher.workers) == 1, dispatcher)
        job = a_job(settings, 1, steps=3)
        handle = dispatcher.submit(job)
        await until(lambda: dispatcher.running == [job])
        taken = await client.xreadgroup(keys.group, "doomed", {jobs_of(settings): ">"}, count=1, block=5000)
        assert taken and taken[0][1]
        await pool.add(1, name="survivor")
        outcome = await asyncio.wait_for(handle.wait(), 30)
        assert isinstance(outcome, Done)
        local = await (await engine.submit(job.request)).result()
        assert outcome.result.grid_png == local.grid_png  # re-run from the stored seeds: same images
        entries = await client.xrange(keys.events(1))
        assert [f[b"worker"] for _, f in entries if f[b"type"] == b"done"] == [b"survivor"]
        assert await client.xlen(jobs_of(settings)) == 0
    finally:
        await pool.close()
        await dispatcher.close(grace=0)
        await client.aclose()


async def test_heartbeats_keep_a_slow_job_from_being_stolen(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path, claim_idle=2.0)
    async with backend(settings, worker_backends, workers=2) as (dispatcher, _):
        slow = dispatcher.submit(a_job(settings, 1, steps=50, size="large"))  # several times claim_idle here
        assert isinstance(await asyncio.wait_for(slow.wait(), 90), Done)
        client = await connect(settings.redis)
        try:
            entries = await client.xrange(dispatcher.keys.events(1))
        finally:
            await client.aclose()
    started_by = [f[b"worker"] for _, f in entries if f[b"type"] == b"started"]
    assert len(started_by) == 1  # ran once: nobody claimed it


async def test_a_job_that_kills_its_workers_goes_to_the_dead_letter_stream(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path, claim_idle=1.0, max_deliveries=2)
    dispatcher = dispatcher_of(settings)
    await dispatcher.start()
    client = await connect(settings.redis)
    keys = dispatcher.keys
    pool = Workers(settings, worker_backends)
    try:
        seconds, _ = await client.time()
        await client.zadd(keys.workers, {"first-victim": seconds})
        await until(lambda: len(dispatcher.workers) == 1, dispatcher)
        handle = dispatcher.submit(a_job(settings, 1))
        await until(lambda: bool(dispatcher.running))
        assert await client.xreadgroup(keys.group, "first-victim", {jobs_of(settings): ">"}, count=1, block=5000)
        await pending_idle(client, keys, jobs_of(settings), settings.redis.claim_idle)  # the first victim is silent
        claimed = await client.xautoclaim(jobs_of(settings), keys.group, "second-victim", min_idle_time=1000)
        assert claimed[1]  # delivered twice now, and both workers died
        await pending_idle(
            client, keys, jobs_of(settings), settings.redis.claim_idle
        )  # the second victim is silent too
        await pool.add(0, name="third")
        outcome = await asyncio.wait_for(handle.wait(), 30)
        assert isinstance(outcome, Failed)
        assert "set aside" in str(outcome.reason)
        dead = await client.xrange(keys.dead)
        assert len(dead) == 1 and dead[0][1][b"deliveries"] == b"2"
        assert await client.xlen(jobs_of(settings)) == 0
        after = dispatcher.submit(a_job(settings, 2))  # the survivor goes on
        assert isinstance(await asyncio.wait_for(after.wait(), 30), Done)
    finally:
        await pool.close()
        await dispatcher.close(grace=0)
        await client.aclose()


async def test_a_restarted_bot_follows_the_jobs_it_had_handed_out(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    pool = Workers(settings, worker_backends)
    await pool.add(0)
    try:
        first = dispatcher_of(settings)
        await first.start()
        await until(lambda: len(first.workers) == 1, first)
        job = a_job(settings, 7, steps=20)
        handle = first.submit(job)
        queued = first.submit(a_job(settings, 8))
        await handle.started.wait()
        await first.close(grace=0)  # the bot stops; the job goes on on its worker
        assert isinstance(await handle.wait(), Interrupted)
        assert isinstance(await queued.wait(), Interrupted)

        client = await connect(settings.redis)
        try:  # a stale mark (a job whose events expired while the bot was down) is dropped at start
            await client.hset(first.keys.inflight_of("bot"), "99", "0")
        finally:
            await client.aclose()
        second = dispatcher_of(settings)
        await second.start()
        client = await connect(settings.redis)
        try:
            assert await client.hkeys(second.keys.inflight_of("bot")) == [b"7"]
        finally:
            await client.aclose()
        try:
            again = second.submit(job)  # what the cog's recovery does with every undelivered job
            assert second.running == [job]  # followed, not queued to run a second time
            rerun = second.submit(a_job(settings, 8))  # never handed out: runs now
            assert isinstance(await asyncio.wait_for(again.wait(), 60), Done)
            assert isinstance(await asyncio.wait_for(rerun.wait(), 60), Done)
            client = await connect(settings.redis)
            try:
                entries = await client.xrange(second.keys.events(7))
            finally:
                await client.aclose()
            assert [f[b"type"] for _, f in entries].count(b"started") == 1  # ran once
        finally:
            await second.close(grace=0)
    finally:
        await pool.close()


async def test_jobs_wait_for_a_worker_that_joins_late(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    dispatcher = dispatcher_of(settings)
    await dispatcher.start()
    client = await connect(settings.redis)
    pool = Workers(settings, worker_backends)
    try:
        handles = [dispatcher.submit(a_job(settings, i, user=i)) for i in (1, 2)]
        # an observation window, not a wait: nothing may happen here, and no event marks "the
        # dispatcher looked and found no worker"; half a second spans its passes on the submissions
        await asyncio.sleep(0.5)
        assert dispatcher.running == [] and dispatcher.queue_depth == 2  # kept in the bot's fair queue
        assert await client.xlen(jobs_of(settings)) == 0  # nothing handed out to Redis
        await pool.add(0)
        await pool.add(1)
        outcomes = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 60)
        assert all(isinstance(o, Done) for o in outcomes)
        assert {w.name for w in dispatcher.workers} == {"worker0", "worker1"}
        assert dispatcher.info is not None and dispatcher.info.device == "cpu"
    finally:
        await pool.close()
        await dispatcher.close(grace=0)
        await client.aclose()


async def test_bad_redis_urls_and_passwords_fail_clearly(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_redis(tmp_path / "secured", args=["--requirepass", "s3cret-pass"]) as secured:
        good = RedisSettings(url=secured.url.replace("unix://", "unix://:s3cret-pass@"))
        client = await connect(good)
        assert await client.ping()
        await client.aclose()
        wrong = RedisSettings(url=secured.url.replace("unix://", "unix://:wrong-pass@"))
        with pytest.raises(RedisUnavailableError) as info:
            await connect(wrong)
        assert "wrong-pass" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(RedisUnavailableError, match="cannot use Redis at unix://"):
        await connect(RedisSettings(url=f"unix://{tmp_path}/nothing-here.sock"))
    assert redact("redis://user:hunter2@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact("rediss://:hunter2@host") == "rediss://:***@host"
    assert redact("redis://host:6379") == "redis://host:6379"


def make_certificates(folder: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl, as an admin would)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS test")
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=seedgrid test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return folder


async def test_a_job_over_tls_with_an_acl_user(
    tmp_path: Path, worker_backends: list[LocalBackend], redis_server: RedisServer, tiny_model: Path
) -> None:
    certs = make_certificates(tmp_path / "certs")
    port = free_port()
    args = [
        "--tls-port", str(port),
        "--tls-cert-file", str(certs / "server.crt"),
        "--tls-key-file", str(certs / "server.key"),
        "--tls-ca-cert-file", str(certs / "ca.crt"),
        "--tls-auth-clients", "no",
        "--user", "default", "off",
        "--user", "seedgrid", "on", ">tls-secret", "~*", "&*", "+@all",
    ]  # fmt: skip
    with running_redis(tmp_path / "tls", args=args):
        base = redis_settings(redis_server, tiny_model, tmp_path)
        url = f"rediss://seedgrid:tls-secret@127.0.0.1:{port}/0"
        settings = dataclasses.replace(
            base, redis=dataclasses.replace(base.redis, url=url, tls_ca_file=certs / "ca.crt")
        )
        async with backend(settings, worker_backends) as (dispatcher, _):
            assert isinstance(await asyncio.wait_for(dispatcher.submit(a_job(settings, 1)).wait(), 30), Done)
        with pytest.raises(RedisUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await connect(dataclasses.replace(settings.redis, tls_ca_file=None))  # the system CAs do not know ours
        with pytest.raises(RedisUnavailableError, match="invalid username-password") as info:
            await connect(dataclasses.replace(settings.redis, url=url.replace("tls-secret", "guess")))
        assert "guess" not in str(info.value)


async def test_consumers_of_dead_workers_are_forgotten(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path, claim_idle=1.0)
    keys, jobs = Keys(settings.redis.prefix), jobs_of(settings)
    client = await connect(settings.redis)
    pool = Workers(settings, worker_backends)
    try:
        await client.xgroup_create(jobs, keys.group, id="0", mkstream=True)
        await client.xgroup_createconsumer(jobs, keys.group, "killed-long-ago")
        await consumer_idle(client, keys, jobs, "killed-long-ago", 3 * settings.redis.claim_idle)  # holding nothing
        await pool.add(0)

        async def names() -> list[bytes]:
            return [c["name"] for c in await client.xinfo_consumers(jobs, keys.group)]

        deadline = asyncio.get_running_loop().time() + 10
        while b"killed-long-ago" in await names():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
    finally:
        await pool.close()
        await client.aclose()


async def test_a_worker_that_leaves_mid_job_hands_it_back_at_once(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend], settings: Settings
) -> None:
    # claim_idle is long: only the hand-back (not a timeout) can move the job this quickly
    redis = redis_settings(redis_server, tiny_model, tmp_path, claim_idle=60.0)
    leaving = LocalBackend({"cpu": partial(PipelineRenderer.load, settings.model, preview_every=0)}, settings.executor)
    await leaving.start()
    dispatcher = dispatcher_of(redis)
    await dispatcher.start()
    client = await connect(redis.redis)
    pool = Workers(redis, worker_backends)
    try:
        worker = Worker(leaving, client, redis.redis, name="leaving")
        runner = asyncio.create_task(worker.run())
        await until(lambda: len(dispatcher.workers) == 1, dispatcher)
        handle = dispatcher.submit(a_job(redis, 1, steps=50, size="large"))
        await handle.started.wait()
        await pool.add(0, name="stays")
        left = asyncio.get_running_loop().time()
        await worker.leave(grace=0)  # SIGTERM with shutdown_timeout = 0
        await asyncio.wait_for(runner, 30)
        assert isinstance(await asyncio.wait_for(handle.wait(), 60), Done)
        entries = await client.xrange(dispatcher.keys.events(1))
        assert [f[b"worker"] for _, f in entries if f[b"type"] == b"started"] == [b"leaving", b"stays"]
        assert asyncio.get_running_loop().time() - left < 30  # well under claim_idle (60 s)
        consumers = {c["name"]: c["pending"] for c in await client.xinfo_consumers(jobs_of(redis), "workers")}
        assert consumers.get(b"leaving", 0) == 0  # holds nothing (a later sweep forgets the name)
    finally:
        await pool.close()
        await dispatcher.close(grace=0)
        await client.aclose()
        if not leaving.closing:
            await leaving.close(grace=0)


async def test_workers_recover_when_redis_loses_its_data(
    redis_server: RedisServer, tiny_model: Path, tmp_path: Path, worker_backends: list[LocalBackend]
) -> None:
    settings = redis_settings(redis_server, tiny_model, tmp_path)
    async with backend(settings, worker_backends) as (dispatcher, _):
        assert isinstance(await dispatcher.submit(a_job(settings, 1)).wait(), Done)
        client = await connect(settings.redis)
        try:
            await client.delete(jobs_of(settings))  # what a Redis restart without appendonly does
        finally:
            await client.aclose()
        again = dispatcher.submit(a_job(settings, 2))
        assert isinstance(await asyncio.wait_for(again.wait(), 30), Done)
