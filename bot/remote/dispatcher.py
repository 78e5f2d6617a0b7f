"""The Redis backend, bot side: the same queue as in-process, with the GPUs on other machines.

The bot keeps the round-robin queue, the limits, positions, pause and cancel-while-queued
exactly as :class:`bot.engine.local.LocalBackend` does (they are :class:`Backend`'s). It hands a job
to Redis only when a worker is free (fewer jobs in flight than live workers), so the order
members see is the order jobs run. Redis does the rest with its own machinery:

* ``<prefix>:jobs:<model>`` — one stream per configured model, each with the consumer group
  ``workers``: delivery to one worker that serves that model, acknowledgement, the pending list of
  jobs taken but not finished, and claiming them back when a worker stops sending heartbeats (see
  :mod:`bot.remote.worker`).
* ``<prefix>:bot:job:<id>:events`` — each job's own stream of events (started, loading, progress, previews,
  done | failed | cancelled), followed here and turned back into the same events the
  in-process executor emits; ``<prefix>:bot:job:<id>:result`` holds the images. Both expire.
* ``<prefix>:bot:inflight`` — the jobs this bot has handed out and not yet seen finish, so that a
  restarted bot picks them up again instead of running them twice.

**Models.** Each worker serves a set of the configured models (all of them, or those of
``seedgrid worker --models``) and says which in its heartbeat. A job goes to the stream of its
model (``""``, the default model, is resolved to its name here, and the job on the wire names it).
The promise above is kept as it was: jobs leave the fair queue in its order, one more whenever
fewer are in flight than there are live workers, and a job whose model no live worker serves fails
at once (``failed.no_worker_for_model``) instead of waiting for a worker that may never come.

The trade-off: that count is over all live workers, not per model. A job for a model whose workers
are all busy is still handed out, and waits in its stream, counted as in flight; meanwhile the next
job in the queue stays here even when a worker for *its* model is free, and that worker idles until
a busy one takes the waiting job. (Sending the later job ahead would break the fair queue's order,
which is the promise kept.) A worker that has not described itself is taken to serve any model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.config import ExecutorSettings, RedisSettings
from bot.engine.backend import Backend, ModelInfo, WorkerInfo
from bot.engine.events import Done, Failed, Interrupted, JobHandle
from bot.engine.models import Catalogue
from bot.jobs import Job
from bot.logs import JOB
from bot.remote.connection import connect, ensure_group
from bot.remote.wire import Keys, WireError, WireJob, decode_event, decode_result, encode_job, event_type
from bot.texts import Text

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

KEEP_AFTER_READ = 300.0
"""Seconds a result stays in Redis once the bot has read it."""
FOLLOW_BLOCK_MS = 1000
"""How long one XREAD of a job's events waits before the follower looks around (closing, cancel)."""


class RedisBackend(Backend):
    """A :class:`Backend` whose jobs run on :mod:`bot.remote.worker` processes reached through Redis."""

    def __init__(
        self,
        redis_settings: RedisSettings,
        models: Catalogue,
        settings: ExecutorSettings | None = None,
        *,
        want_tiles: bool = False,
        scope: str = "bot",
        url: str | None = None,
    ) -> None:
        super().__init__(settings)
        self.redis_settings = redis_settings
        self.models = models
        """The configured models: whose streams exist, and which is the default (a job's ``""``)."""
        self.keys = Keys(redis_settings.prefix)
        self.want_tiles = want_tiles
        self.scope = scope
        self._url = url
        self._client: aioredis.Redis | None = None
        self._followed: dict[int, tuple[JobHandle, asyncio.Task[None]]] = {}  # handed out, not yet ended
        self._adopt: set[int] = set()  # handed out by an earlier run of the bot, still unfinished
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._workers: list[WorkerInfo] = []
        self._stop_following = asyncio.Event()

    @classmethod
    def from_settings(
        cls, settings: Settings, models: Catalogue, *, want_tiles: bool, scope: str = "bot"
    ) -> RedisBackend:
        """The bot's side of ``[redis]``: it loads no model (the engine reads the tokenizers it needs)."""
        return cls(settings.redis, models, settings.executor, want_tiles=want_tiles, scope=scope)

    # --- life cycle ---

    async def start(self) -> None:
        """Connect, make sure every model's stream and its group exist, and start handing out jobs."""
        self._client = await connect(self.redis_settings, url=self._url)
        await ensure_group(self._client, self.keys, self.models.names)
        self._adopt = set()
        for raw in await self._client.hkeys(self.keys.inflight_of(self.scope)):
            job_id = int(raw)
            if await self._client.exists(self.keys.events(job_id, self.scope)):
                self._adopt.add(job_id)
            else:  # its events expired long ago: if it is still undelivered it runs again from the store
                await self._client.hdel(self.keys.inflight_of(self.scope), raw)
        if self._adopt:
            log.info("%d job(s) handed out before the restart are still in Redis", len(self._adopt))
        await self.refresh_workers()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="seedgrid-dispatcher")

    # --- shutdown (the order is Backend.close's): jobs on workers go on running there, and the next
    # start of the bot follows them again from Redis ---

    def _running_ends(self) -> list[Awaitable[object]]:
        return [task for _, task in self._followed.values()]

    def _let_go_running(self) -> None:
        self._stop_following.set()

    async def _shut_down(self) -> None:
        # the loop ends on the closing flag (a Task.cancel() landing inside a redis-py call can be swallowed)
        self._wake.set()
        tasks = [t for t in [self._dispatcher, *self._side_tasks] if t is not None]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=10)
            for task in stuck:
                task.cancel()
        if self._client is not None:
            await self._client.aclose()

    # --- what the engine and the admin commands see ---

    @property
    def running(self) -> list[Job]:
        """Jobs handed to the workers (running, or about to be)."""
        return [handle.job for handle, _ in self._followed.values()]

    @property
    def workers(self) -> list[WorkerInfo]:
        """The live workers as of the last heartbeat check (about every ``claim_idle / 5`` s)."""
        return list(self._workers)

    @property
    def info(self) -> ModelInfo | None:
        """The first live worker's model; ``safety_checker`` if *any* worker runs one (its tiles may be flagged);
        ``models`` and ``loaded``: those of all the live workers together."""
        if not self._workers:
            return None
        checker = any(w.model.safety_checker for w in self._workers)
        models = tuple(dict.fromkeys(m for w in self._workers for m in w.model.models))
        loaded = tuple(dict.fromkeys(m for w in self._workers for m in w.model.loaded))
        return dataclasses.replace(self._workers[0].model, safety_checker=checker, models=models, loaded=loaded)

    def model_of(self, job: Job) -> str:
        """The name of the model that draws ``job`` (``""`` is the default model); its stream is named after it."""
        preset = self.models.get(job.request.model)
        return preset.name if preset is not None else job.request.model

    def serves(self, model: str) -> bool:
        """Whether a live worker may run jobs of ``model``: one says it serves it, or one has not said what."""
        return any(model in w.model.models or not w.model.models for w in self._workers)

    def submit(self, job: Job) -> JobHandle:
        if job.id in self._adopt and not self._closing:  # already on a worker: follow it, don't run it twice
            self._adopt.discard(job.id)
            handle = JobHandle(job)
            self._follow(handle)
            return handle
        handle = super().submit(job)
        self._wake.set()
        return handle

    def cancel(self, handle: JobHandle) -> None:
        super().cancel(handle)
        if handle.job.id in self._followed:
            self._background(self._request_cancel(handle.job.id))

    def resume(self) -> None:
        super().resume()
        self._wake.set()

    # --- dispatching ---

    async def _dispatch_loop(self) -> None:
        next_refresh = 0.0
        while not self._closing:
            try:
                if time.monotonic() >= next_refresh:
                    await self.refresh_workers()
                    next_refresh = time.monotonic() + self.redis_settings.heartbeat
                while len(self._followed) < len(self._workers) and (handle := self._pop_ready()) is not None:
                    await self._route(handle)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                log.warning("Redis: %s; retrying in %.0f s", exc, self.redis_settings.heartbeat)
            except Exception:
                log.exception("the dispatcher hit an error; retrying")
            self._wake.clear()
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.01, next_refresh - time.monotonic())):
                    await self._wake.wait()

    async def _route(self, handle: JobHandle) -> None:
        """Hand a popped job to the workers of its model, or fail it when no live worker serves that model."""
        model = self.model_of(handle.job)
        if not self.serves(model):
            try:
                await self.refresh_workers()  # one that has just started may serve it
            except BaseException:
                self._turn_over(handle)
                self._push(handle)  # not handed out: back in the queue (the loop retries)
                raise
        if self.serves(model):
            await self._hand_out(handle, model)
        elif not self._workers:  # the last one has gone meanwhile: wait for one, as every job does
            self._turn_over(handle)
            self._push(handle)
        else:
            self._no_worker_for(handle, model)

    async def _hand_out(self, handle: JobHandle, model: str) -> None:
        """Put one job on its model's stream (with its 'dispatched' event first, and the in-flight mark)."""
        client = self._require_client()
        job = handle.job
        events = self.keys.events(job.id, self.scope)
        # the worker runs the model of the stream, named: its own default model may be another one
        sent = (
            job
            if job.request.model == model
            else dataclasses.replace(job, request=dataclasses.replace(job.request, model=model))
        )
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.xadd(events, {b"type": b"dispatched"})
                pipe.expire(events, int(self.redis_settings.result_ttl))
                pipe.hset(self.keys.inflight_of(self.scope), str(job.id), str(time.time()))
                pipe.xadd(self.keys.jobs_for(model), encode_job(WireJob(sent, self.want_tiles, self.scope)))  # type: ignore[arg-type]
                await pipe.execute()
        except BaseException:
            self._turn_over(handle)
            self._push(handle)  # not handed out: back in the queue (the loop retries)
            raise
        log.info("job %d handed to the workers of %s", job.id, model)
        self._follow(handle, popped=True)

    def _no_worker_for(self, handle: JobHandle, model: str) -> None:
        """End a popped job whose model no live worker serves (rather than let it wait for one that may never come)."""
        served = ", ".join(self.info.models) if self.info is not None else ""
        log.warning("job %d: no live worker serves the model %s (they serve: %s)", handle.job.id, model, served or "?")
        handle.emit(Failed(Text("failed.no_worker_for_model", model=model)))
        self._turn_over(handle)

    def _follow(self, handle: JobHandle, *, popped: bool = False) -> None:
        """Follow a job on the workers; ``popped``: it came from this queue (its end is a finished turn)."""
        task = asyncio.create_task(self._follow_events(handle), name=f"seedgrid-follow-{handle.job.id}")
        self._followed[handle.job.id] = (handle, task)

        def finished(_: asyncio.Task[None]) -> None:
            self._followed.pop(handle.job.id, None)
            if popped:
                self._turn_over(handle)
            self._wake.set()

        task.add_done_callback(finished)

    async def _follow_events(self, handle: JobHandle) -> None:
        """Turn a job's event stream back into the in-process executor's events, until it ends."""
        client = self._require_client()
        job_id = handle.job.id
        JOB.set(job_id)  # this task's log lines are about this job
        key = self.keys.events(job_id, self.scope)
        last = b"0"
        try:
            while not handle.done:
                if self._stop_following.is_set():
                    handle.emit(Interrupted())  # still on its worker; the next start follows it again
                    return
                try:
                    reply: Any = await client.xread({key: last}, count=100, block=FOLLOW_BLOCK_MS)
                except RedisError as exc:
                    log.warning("job %d: cannot read its events (%s); retrying", job_id, exc)
                    await asyncio.sleep(1.0)
                    continue
                if not reply:
                    if not await client.exists(key):  # expired, or never handed out: run it again
                        log.warning("job %d: its events are gone from Redis; queueing it again", job_id)
                        await self._requeue(handle)
                        return
                    continue
                for entry_id, fields in reply[0][1]:
                    last = entry_id
                    await self._on_event(handle, fields)
                    if handle.done:
                        break
        finally:
            if handle.done and not isinstance(await handle.wait(), Interrupted):
                with contextlib.suppress(RedisError):
                    await client.hdel(self.keys.inflight_of(self.scope), str(job_id))
                    await client.delete(self.keys.cancel(job_id, self.scope))

    async def _on_event(self, handle: JobHandle, fields: dict[bytes, bytes]) -> None:
        job_id = handle.job.id
        try:
            if event_type(fields) == "done":
                data: Any = await self._require_client().hgetall(self.keys.result(job_id, self.scope))
                if not data:
                    handle.emit(Failed(Text("failed.expired_in_redis")))
                    return
                result = decode_result(data)
                handle.emit(Done(result))
                await self._keep_briefly(job_id)
                log.info("job %d done on %s in %.2f s", job_id, fields.get(b"worker", b"?").decode(), result.elapsed)
                return
            event = decode_event(fields)
        except WireError as exc:
            log.error("job %d: unreadable event from a worker: %s", job_id, exc)
            handle.emit(Failed(Text("failed.unreadable_event")))
            return
        if event is not None:
            handle.emit(event)

    async def _keep_briefly(self, job_id: int) -> None:
        """The images have been read: keep them only ``KEEP_AFTER_READ`` s more (enough for a bot that
        crashes before posting to find them again), not the full ``result_ttl`` (a 512² grid is ~2 MB)."""
        keep = int(min(self.redis_settings.result_ttl, KEEP_AFTER_READ))
        with contextlib.suppress(RedisError):
            async with self._require_client().pipeline(transaction=False) as pipe:
                pipe.expire(self.keys.result(job_id, self.scope), keep)
                pipe.expire(self.keys.events(job_id, self.scope), keep)
                await pipe.execute()

    async def _requeue(self, handle: JobHandle) -> None:
        with contextlib.suppress(RedisError):
            await self._require_client().hdel(self.keys.inflight_of(self.scope), str(handle.job.id))
        self._followed.pop(handle.job.id, None)
        if self._closing:
            handle.emit(Interrupted())
        else:
            self._push(handle)
            self._wake.set()

    async def _request_cancel(self, job_id: int) -> None:
        try:
            await self._require_client().set(
                self.keys.cancel(job_id, self.scope), b"1", ex=int(self.redis_settings.result_ttl)
            )
        except RedisError as exc:
            log.warning("job %d: could not pass the cancel on to its worker: %s", job_id, exc)

    # --- workers ---

    async def refresh_workers(self) -> None:
        """Who is alive: heartbeats within ``claim_idle`` (by Redis's clock, shared by every machine)."""
        client = self._require_client()
        seconds, micros = await client.time()
        now = seconds + micros / 1e6
        horizon = now - self.redis_settings.claim_idle
        await client.zremrangebyscore(self.keys.workers, "-inf", f"({horizon - 10 * self.redis_settings.claim_idle}")
        members: Any = await client.zrangebyscore(self.keys.workers, horizon, "+inf")
        names = sorted(n.decode() for n in members)
        described: Any = await client.mget([self.keys.worker_info(name) for name in names]) if names else []
        infos = [_worker_info(name, raw) for name, raw in zip(names, described, strict=True)]
        if [w.name for w in infos] != [w.name for w in self._workers]:
            log.info("workers: %s", ", ".join(w.name for w in infos) or "none")
        self._workers = infos

    # --- helpers ---

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisBackend.start() has not been awaited")
        return self._client

    def _background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


def _worker_info(name: str, raw: bytes | None) -> WorkerInfo:
    try:
        data = json.loads(raw) if raw else {}
        described = data.get("pipeline")
        if described is None:
            return WorkerInfo(name, job=data.get("job"))
        tuples = {key: tuple(described.get(key, ())) for key in ("speed", "models", "loaded")}  # JSON gives lists
        model = ModelInfo(**{**described, **tuples})
        return WorkerInfo(name, model, data.get("job"))
    except (ValueError, TypeError):
        return WorkerInfo(name)
