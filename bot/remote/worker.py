"""The Redis backend, worker side: ``python -m bot worker`` — one per GPU, anywhere that reaches Redis.

A thin loop around the in-process :class:`bot.engine.local.LocalBackend` (one device, its models loaded
on demand and kept warm): take a job from the streams of the models it serves (``<prefix>:jobs:<model>``,
every configured model unless ``--models`` names some) — the oldest waiting across them, or the first to
arrive while one ``XREADGROUP`` waits on all of them —, run it,
write its events and result, ``XACK`` it on the stream it came from. Its heartbeat says which models it
serves, so that the bot fails a job no live worker can run. Redis's consumer groups do the bookkeeping:

* **Heartbeats.** Every ``claim_idle / 5`` s the worker refreshes its entry in
  ``<prefix>:workers`` and resets the idle time of the job it holds (``XCLAIM … JUSTID``), so a
  slow but healthy job is never taken away.
* **Claiming.** When idle, a worker looks at the pending list of each of its streams for jobs idle
  longer than ``claim_idle`` (their worker died: kill -9, machine lost) and claims one with
  ``XCLAIM``, which is atomic: one worker wins. It re-runs the job from its stored seeds, so the
  images are the same; the bot posts whichever result comes first, once.
* **Dead letters.** A job already delivered ``max_deliveries`` times goes to ``<prefix>:dead``
  instead, and the member is told it failed.
* **Nothing accumulates.** Finished entries are deleted from the stream, event streams and
  results expire after ``result_ttl``, the dead-letter stream is capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.config import RedisSettings, Settings
from bot.engine.backend import BackendClosedError
from bot.engine.events import TERMINAL, Cancelled, Done, Event, Interrupted, JobHandle, Queued
from bot.engine.local import LocalBackend
from bot.logs import about_job
from bot.remote.connection import ensure_group
from bot.remote.wire import Keys, WireError, WireJob, decode_job, encode_event, encode_result, job_id_of
from bot.texts import Text

if TYPE_CHECKING:
    from bot.monitoring.observer import Observer

log = logging.getLogger(__name__)

EVENTS_MAXLEN = 500
"""Events kept per job (progress and previews of one job are well under this)."""
DEAD_MAXLEN = 1000
TIDY_EVERY = 60.0
"""Seconds between sweeps for consumers of workers that died (they are removed once they hold nothing)."""
CANCEL_POLL = 0.25
"""Seconds between checks for a cancel request while a job runs (it stops at the next step)."""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of a job stream that this worker holds (read or claimed)."""

    stream: str
    """The stream it came from (``<prefix>:jobs:<model>``): where it is acknowledged, released, touched."""
    entry_id: bytes
    fields: dict[bytes, bytes]
    deliveries: int


def default_name(device: str) -> str:
    return f"{socket.gethostname()}-{device.replace(':', '')}-{os.getpid()}"


class Worker:
    """Runs jobs from Redis on one :class:`LocalBackend` until :meth:`stop` is called.

    It serves the models its (started) backend serves (:attr:`ModelInfo.models`), reading their streams.
    """

    def __init__(
        self,
        backend: LocalBackend,
        client: aioredis.Redis,
        settings: RedisSettings,
        *,
        name: str,
        observer: Observer | None = None,
    ) -> None:
        self.observer = observer  # metrics: every job event, claim and dead letter
        self.backend = backend
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.name = name
        self._stopping = asyncio.Event()
        self._quit = asyncio.Event()
        self._holding: StreamEntry | None = None
        self.jobs_done = 0
        self._next_tidy = 0.0
        self._streams: dict[str, str] = {}  # stream → the model whose jobs it holds; set by run()

    @property
    def models(self) -> tuple[str, ...]:
        """The models whose jobs this worker takes: those its backend serves (known once it has started)."""
        info = self.backend.info
        return info.models if info is not None else ()

    def stop(self) -> None:
        """Take no new job (what SIGTERM does); :meth:`leave` then deals with the running one."""
        self._stopping.set()

    async def stopped(self) -> None:
        await self._stopping.wait()

    async def leave(self, *, grace: float | None = None) -> None:
        """Stop: the running job gets ``grace`` s (default ``executor.shutdown_timeout``) to finish; if it
        does not, it is stopped and handed back at once (marked long idle), so another worker takes it."""
        self.stop()
        await self.backend.close(grace=grace)

    async def run(self) -> None:
        models = self.models
        if not models:
            raise RuntimeError("the worker's backend serves no model: start it before the worker")
        self._streams = {self.keys.jobs_for(model): model for model in models}
        await ensure_group(self.client, self.keys, models)
        await self._register()
        heartbeat = asyncio.create_task(self._heartbeats(), name="seedgrid-heartbeat")
        try:
            while not self._stopping.is_set():
                try:
                    entry = await self._claim_one() or await self._read_one()
                    if entry is not None:
                        with about_job(_job_id(entry.fields)):  # log lines say which job
                            await self._process(entry)
                except RedisError as exc:
                    log.warning("Redis: %s; retrying in 1 s", exc)
                    await asyncio.sleep(1.0)
                    if "NOGROUP" in str(exc):  # Redis lost its data (restarted without appendonly): start over
                        with contextlib.suppress(RedisError):
                            await ensure_group(self.client, self.keys, models)
        finally:
            # a flag, not Task.cancel(): a cancellation that lands inside a redis-py call can be swallowed
            self._quit.set()
            _, beating = await asyncio.wait({heartbeat}, timeout=self.settings.heartbeat + 10)
            for task in beating:
                task.cancel()
            with contextlib.suppress(RedisError):
                await self._unregister()

    # --- taking jobs ---

    async def _read_one(self) -> StreamEntry | None:
        """The next new job of any of this worker's models: the oldest one waiting across their streams, else
        (none waiting) the first to arrive while one ``XREADGROUP`` waits on all of them."""
        if len(self._streams) > 1:
            oldest = await self._read_oldest_waiting()
            if oldest is not None:
                return oldest
        block = max(100, int(min(1.0, self.settings.heartbeat) * 1000))
        reply: Any = await self.client.xreadgroup(
            self.keys.group, self.name, dict.fromkeys(self._streams, ">"), count=1, block=block
        )
        # COUNT is per stream: several streams can each give one job. Keep the oldest (the bot handed
        # them out in its queue's order) and put the others back for the next free worker.
        entries = sorted(
            (
                StreamEntry(_text(stream), entry_id, fields, 1)
                for stream, items in reply or ()
                for entry_id, fields in items
            ),
            key=lambda entry: _order(entry.entry_id),
        )
        if not entries:
            return None
        for extra in entries[1:]:
            try:
                await self._put_back(extra)
            except RedisError as exc:  # it stays ours, unstarted: claimed back once claim_idle has passed
                log.warning("job %s: could not put it back (%s)", _label(extra.fields), exc)
        return entries[0]

    async def _read_oldest_waiting(self) -> StreamEntry | None:
        """With several models: look at the next job no worker has been handed yet in each stream (past the
        group's last-delivered id, without taking it) and read from the stream whose job is oldest, alone.

        So jobs run in the order the bot queued them across models, and a job of another model is never
        taken only to be put back behind newer ones. (Should a read still return jobs of two streams — jobs
        arriving between this look and the read, or a server that wakes a blocked read with several streams;
        Redis 7 wakes it with one —, :meth:`_read_one` keeps the oldest and puts the others back.)"""
        heads: list[tuple[tuple[int, int], str]] = []
        for stream in self._streams:
            groups: Any = await self.client.xinfo_groups(stream)
            last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == self.keys.group), b"0-0")
            waiting: Any = await self.client.xrange(stream, min=f"({_text(last)}", max="+", count=1)
            if waiting:
                heads.append((_order(waiting[0][0]), stream))
        for _, stream in sorted(heads):
            reply: Any = await self.client.xreadgroup(self.keys.group, self.name, {stream: ">"}, count=1)
            for name, items in reply or ():
                for entry_id, fields in items:
                    return StreamEntry(_text(name), entry_id, fields, 1)
        return None  # none waiting (or other workers were quicker)

    async def _put_back(self, entry: StreamEntry) -> None:
        """Return a job read but not started to its stream as a new entry: the next worker of its model
        that reads takes it at once, with no delivery counted (claiming it back would wait ``claim_idle``)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(entry.stream, self.keys.group, entry.entry_id)
            pipe.xdel(entry.stream, entry.entry_id)
            pipe.xadd(entry.stream, entry.fields)  # type: ignore[arg-type]
            await pipe.execute()
        log.info(
            "job %s read along with another one: back in %s for the next worker", _label(entry.fields), entry.stream
        )

    async def _claim_one(self) -> StreamEntry | None:
        """A job whose worker stopped sending heartbeats, claimed for this one (or dead-lettered)."""
        if time.monotonic() >= self._next_tidy:
            await self._tidy_consumers()
        for stream in self._streams:
            claimed = await self._claim_from(stream)
            if claimed is not None:
                return claimed
        return None

    async def _claim_from(self, stream: str) -> StreamEntry | None:
        idle_ms = int(self.settings.claim_idle * 1000)
        pending: Any = await self.client.xpending_range(
            stream, self.keys.group, min="-", max="+", count=10, idle=idle_ms
        )
        for entry in pending:
            entry_id, owner, delivered = entry["message_id"], entry["consumer"], int(entry["times_delivered"])
            claimed: Any = await self.client.xclaim(
                stream, self.keys.group, self.name, min_idle_time=idle_ms, message_ids=[entry_id]
            )
            if not claimed:
                continue  # another worker was quicker
            _, fields = claimed[0]
            if not fields:  # deleted from the stream meanwhile: nothing left to do
                await self.client.xack(stream, self.keys.group, entry_id)
                continue
            if delivered >= self.settings.max_deliveries:
                if self.observer is not None:
                    self.observer.dead_lettered("deliveries")
                await self._dead_letter(
                    StreamEntry(stream, entry_id, fields, delivered),
                    f"delivered {delivered} times, and every worker stopped before finishing it",
                    for_member=Text("failed.dead_letter", count=delivered),
                )
                continue
            log.warning(
                "claimed job %s from %s (silent for over %.0f s; delivery %d)",
                _label(fields),
                _text(owner),
                self.settings.claim_idle,
                delivered + 1,
            )
            if self.observer is not None:
                self.observer.job_claimed()
            return StreamEntry(stream, entry_id, fields, delivered + 1)
        return None

    async def _tidy_consumers(self) -> None:
        """Forget consumers of dead workers (killed, so they never said goodbye) once they hold nothing."""
        self._next_tidy = time.monotonic() + TIDY_EVERY
        gone_ms = int(self.settings.claim_idle * 1000) * 3  # (a live worker reads every second: never this idle)
        for stream in self._streams:
            consumers: Any = await self.client.xinfo_consumers(stream, self.keys.group)
            for consumer in consumers:
                name = _text(consumer["name"])
                if name != self.name and int(consumer["pending"]) == 0 and int(consumer["idle"]) > gone_ms:
                    await self.client.xgroup_delconsumer(stream, self.keys.group, name)
                    log.info("forgot the consumer of a departed worker: %s (%s)", name, stream)

    # --- running one ---

    async def _process(self, entry: StreamEntry) -> None:
        try:
            wire = decode_job(entry.fields)
        except WireError as exc:
            if self.observer is not None:
                self.observer.dead_lettered("unreadable")
            await self._dead_letter(entry, str(exc), for_member=Text("failed.unreadable_job"))
            return
        job, scope = wire.job, wire.scope
        model = self._streams.get(entry.stream, job.request.model)
        if job.request.model != model:  # the stream names the model ("" would be this worker's own default)
            job = dataclasses.replace(job, request=dataclasses.replace(job.request, model=model))
        if await self.client.exists(self.keys.cancel(job.id, scope)):
            await self._publish(job.id, scope, encode_event(Cancelled(), worker=self.name))
            await self._finish(entry)
            return
        log.info("job %d: running (delivery %d)", job.id, entry.deliveries)
        self._holding = entry
        try:
            try:
                handle = self.backend.submit(job)
            except BackendClosedError:  # shutting down between reading the job and running it
                await self._release(entry)
                return
            watcher = asyncio.create_task(self._watch_cancel(handle, scope))
            try:
                outcome = await self._forward(handle, wire)
            finally:
                watcher.cancel()
            if isinstance(outcome, Interrupted):
                await self._release(entry)  # shutting down: another worker takes it at once
                return
            await self._finish(entry)
            self.jobs_done += 1
        finally:
            self._holding = None

    async def _forward(self, handle: JobHandle, wire: WireJob) -> Event:
        job_id, scope = handle.job.id, wire.scope
        async for event in handle.events():
            if self.observer is not None:
                self.observer.job_event(handle.job, event)
            if isinstance(event, Queued):
                continue
            if isinstance(event, Interrupted):
                return event
            if isinstance(event, Done):
                result = event.result
                flagged = any(result.nsfw) and handle.job.request.policy == "blur"
                fields = await asyncio.to_thread(encode_result, result, with_tiles=wire.want_tiles or flagged)
                ttl = int(self.settings.result_ttl)
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.hset(self.keys.result(job_id, scope), mapping=fields)  # type: ignore[arg-type]
                    pipe.expire(self.keys.result(job_id, scope), ttl)
                    await pipe.execute()
                log.info("job %d: done in %.2f s", job_id, result.elapsed)
            await self._publish(job_id, scope, encode_event(event, worker=self.name))
            if isinstance(event, TERMINAL):
                return event
        raise RuntimeError("the event stream ended without an outcome")  # pragma: no cover

    async def _publish(self, job_id: int, scope: str, fields: dict[bytes, Any]) -> None:
        key = self.keys.events(job_id, scope)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xadd(key, fields, maxlen=EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.expire(key, int(self.settings.result_ttl))
            await pipe.execute()

    async def _finish(self, entry: StreamEntry) -> None:
        """Acknowledge and delete the entry: the job is over (its outcome is in its event stream)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(entry.stream, self.keys.group, entry.entry_id)
            pipe.xdel(entry.stream, entry.entry_id)
            await pipe.execute()

    async def _release(self, entry: StreamEntry) -> None:
        """Hand an unfinished job back: mark it long idle (without counting a delivery) so the next worker claims it."""
        with contextlib.suppress(RedisError):
            await self.client.xclaim(
                entry.stream,
                self.keys.group,
                self.name,
                min_idle_time=0,
                message_ids=[entry.entry_id],
                idle=int(self.settings.claim_idle * 1000) * 10,
                justid=True,
            )
        log.info("job %s handed back for another worker", _label(entry.fields))

    async def _dead_letter(self, entry: StreamEntry, reason: str, *, for_member: Text) -> None:
        """Set a job aside in the dead-letter stream and tell its follower (so the member) it failed."""
        ident = job_id_of(entry.fields)
        log.error("job %s set aside in %s: %s", _label(entry.fields), self.keys.dead, reason)
        letter = {
            b"job": entry.fields.get(b"job", b""),
            b"reason": reason,
            b"deliveries": entry.deliveries,
            b"worker": self.name,
        }
        await self.client.xadd(self.keys.dead, letter, maxlen=DEAD_MAXLEN, approximate=True)  # type: ignore[arg-type]
        if ident is not None:
            failed: dict[bytes, Any] = {b"type": b"failed", b"worker": self.name, b"reason": for_member.to_json()}
            await self._publish(ident[0], ident[1], failed)
        await self._finish(entry)

    async def _watch_cancel(self, handle: JobHandle, scope: str) -> None:
        key = self.keys.cancel(handle.job.id, scope)
        while not handle.done:
            with contextlib.suppress(RedisError):
                if await self.client.exists(key):
                    log.info("job %d: cancelled by the bot", handle.job.id)
                    self.backend.cancel(handle)
                    return
            await asyncio.sleep(CANCEL_POLL)

    # --- presence ---

    async def _register(self) -> None:
        await self._beat()
        log.info("worker %s ready for jobs", self.name)

    async def _unregister(self) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.workers, self.name)
            pipe.delete(self.keys.worker_info(self.name))
            await pipe.execute()
        # leave the consumer groups tidy: this name will not come back (the pid is part of it)
        for stream in self._streams:
            pending: Any = await self.client.xpending_range(
                stream, self.keys.group, min="-", max="+", count=1, consumername=self.name
            )
            if not pending:
                await self.client.xgroup_delconsumer(stream, self.keys.group, self.name)
        log.info("worker %s left after %d job(s)", self.name, self.jobs_done)

    async def _beat(self) -> None:
        seconds, micros = await self.client.time()
        holding = self._holding
        ident = job_id_of(holding.fields) if holding is not None else None
        info = self.backend.info  # its models (whose streams it reads) and those it holds loaded, too
        body = {
            "job": ident[0] if ident else None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pipeline": dataclasses.asdict(info) if info is not None else None,
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.workers, {self.name: seconds + micros / 1e6})
            pipe.set(self.keys.worker_info(self.name), json.dumps(body), ex=int(self.settings.claim_idle * 3) + 1)
            await pipe.execute()
        if holding is not None:
            await self._touch(holding)

    async def _touch(self, entry: StreamEntry) -> None:
        """Reset the idle time of the job we hold — unless another worker has claimed it meanwhile."""
        mine: Any = await self.client.xpending_range(
            entry.stream, self.keys.group, min=entry.entry_id, max=entry.entry_id, count=1
        )
        if not mine:
            return
        owner = _text(mine[0]["consumer"])
        if owner != self.name:  # we were silent too long and another worker took it: both finish, the first counts
            log.warning("job %s was claimed by %s meanwhile; finishing our copy anyway", _label(entry.fields), owner)
            return
        await self.client.xclaim(
            entry.stream, self.keys.group, self.name, min_idle_time=0, message_ids=[entry.entry_id], justid=True
        )

    async def _heartbeats(self) -> None:
        """Until :meth:`run` ends (through a graceful stop too: the running job must not be claimed)."""
        while not self._quit.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.heartbeat):
                    await self._quit.wait()
            if self._quit.is_set():
                return
            try:
                await self._beat()
            except RedisError as exc:
                log.warning("heartbeat failed: %s", exc)


def _job_id(fields: dict[bytes, bytes]) -> int | None:
    ident = job_id_of(fields)
    return None if ident is None else ident[0]


def _label(fields: dict[bytes, bytes]) -> str:
    """A job entry as logs name it: its id, and its scope unless it is the bot's."""
    ident = job_id_of(fields)
    if ident is None:
        return "?"
    job_id, scope = ident
    return str(job_id) if scope == "bot" else f"{job_id} ({scope})"


def _order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id (``<ms>-<seq>``, Redis's clock) as something that sorts in time order."""
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _text(value: object) -> str:
    """A name from a Redis reply (bytes unless the client decodes responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_worker(
    settings: Settings,
    *,
    device: str | None = None,
    name: str | None = None,
    metrics_listen: str = "",
    models: Sequence[str] = (),
) -> int:
    """Load the model, then take jobs until SIGTERM/SIGINT. Blocks (runs the event loop's life).

    ``metrics_listen``: where to serve this worker's /metrics, /healthz and /readyz (empty: off).
    ``models``: the names of the configured models to serve (empty: all of them); ``KeyError`` for a
    name the config does not have (the command line checks them first)."""
    import signal

    from bot.engine.models import Catalogue
    from bot.monitoring.health import serve_worker
    from bot.monitoring.metrics import Metrics
    from bot.remote.connection import connect

    catalogue = await asyncio.to_thread(Catalogue.resolve, settings)
    if models:
        catalogue = catalogue.only(models)
    log.info("serving the model(s) %s", ", ".join(catalogue.names))
    metrics = Metrics.for_settings(settings, role="worker") if metrics_listen else None
    backend = LocalBackend.from_settings(settings, catalogue, device=device, observer=metrics)
    client = await connect(settings.redis)
    endpoint = None
    started = time.perf_counter()
    try:
        if metrics is not None:  # before the model loads: /healthz answers meanwhile, /readyz says not yet
            endpoint = serve_worker(metrics_listen, metrics, settings.metrics, backend, client)
        await backend.start()
        log.info("model loaded in %.1f s", time.perf_counter() - started)
        worker_name = name or default_name(device or settings.model.device)
        worker = Worker(backend, client, settings.redis, name=worker_name, observer=metrics)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        runner = asyncio.create_task(worker.run())
        await worker.stopped()
        await worker.leave()
        await runner
    finally:
        if not backend.closing:
            await backend.close(grace=0)
        await client.aclose()
        if endpoint is not None:
            await asyncio.to_thread(endpoint.stop)
    return 0
