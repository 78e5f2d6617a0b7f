"""The engine: the one API the cogs and the CLI use.

It puts together the store (SQLite), a backend (this process's devices, or Redis workers) and
the optional output folder. A job goes through it like this::

    job = await engine.create(request)   # admitted (limits) and stored, before Discord is answered
    engine.start(job, listener)          # queued; one follower records each event, then tells the listener:
                                         # Queued, Started, Progress, Preview, then the outcome
    await engine.delivered(job.id, message_id)   # posted: a restart will not run it again

Each job has exactly one follower task, owned here: it writes the job's state to the store
(queued → running → done / failed / cancelled), passes the event to the listener (the cog's
delivery of that job), and saves the images to the output folder when one is configured, with
aiofiles so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiofiles
import aiofiles.os

from bot.engine.backend import Backend, BackendClosedError, ModelInfo, PromptReader, QueueFullError, WorkerInfo
from bot.engine.events import Cancelled, Done, Event, Failed, Interrupted, JobHandle, Started
from bot.engine.models import Catalogue
from bot.engine.store import Store
from bot.imaging.recipe import RECIPE_KEY, Recipe, RecipeError, read_text_chunks
from bot.jobs import Job, JobRequest, JobResult, JobStatus, Tile
from bot.logs import JOB
from bot.rules.server import (
    DAY,
    GPU_PREFIX,
    NSFW_PREFIX,
    POLICY_NAMES,
    QUOTA_PREFIX,
    Defaults,
    ServerSettings,
    period_start,
)
from bot.texts import Text

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.monitoring.observer import Observer

log = logging.getLogger(__name__)

DEFAULT_PROMPT_TOKENS = 77
"""What CLIP reads, for when no model (and no tokenizer) is at hand."""

NO_SERVER_SETTINGS = ServerSettings()

JobListener = Callable[[Event], Awaitable[None]]
"""Told every event of one job, in order, after the engine has recorded it (the cog's delivery)."""


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """What ``/seedgrid status`` shows."""

    model: ModelInfo | None
    waiting: int
    running: int
    paused: bool
    workers: list[WorkerInfo] | None
    """The live workers of the redis backend; None for the local one."""
    run_times: list[float]
    """Seconds each job that finished successfully since the time asked about took."""
    waiting_for_delivery: int = 0
    """Finished jobs whose outcome is being posted (or retried, while Discord has trouble)."""


@dataclass(frozen=True, slots=True)
class Quota:
    """A member's daily allowance in a server (``/quota``)."""

    allowance: int | None
    """Images per day; None: no limit here."""
    used: int
    resets_at: float
    """When the allowance starts again (``time.time()``: midnight UTC)."""
    gpu_allowance: int | None = None
    """GPU-seconds per day; None: no limit here."""
    gpu_used: float = 0.0
    """GPU-seconds the member's finished jobs took today (cancelled and failed ones do not count)."""

    @property
    def left(self) -> int | None:
        return None if self.allowance is None else max(0, self.allowance - self.used)

    @property
    def gpu_left(self) -> int | None:
        """Whole GPU-seconds left (a job is refused once none is)."""
        return None if self.gpu_allowance is None else max(0, int(self.gpu_allowance - self.gpu_used))


@dataclass(frozen=True, slots=True)
class QueueListing:
    running: list[Job]
    waiting: list[Job]
    """In the order they will run."""


class Engine:
    def __init__(
        self,
        store: Store,
        backend: Backend,
        models: Catalogue,
        *,
        output_dir: Path | None = None,
        prompt_readers: dict[str, PromptReader | None] | None = None,
        observer: Observer | None = None,
        servers: dict[int, ServerSettings] | None = None,
    ) -> None:
        self._observer = observer  # metrics (bot.monitoring): told of every admission, refusal and job event
        self._store = store
        self._backend = backend
        self.models = models
        """The configured models with their families and presets (what a member may pick)."""
        self._readers = prompt_readers or {}
        self._servers = servers or {}  # /settings, read once at start-up and kept in step with the store
        self._output_dir = output_dir
        self._handles: dict[int, JobHandle] = {}
        self._followers: set[asyncio.Task[None]] = set()
        self._cancelled_by: dict[int, str] = {}
        self._pending: collections.Counter[int] = collections.Counter()
        self._admitted: set[int] = set()  # created by create(), not yet started

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        database: Path | str | None = None,
        scope: str = "bot",
        want_tiles: bool | None = None,
        observer: Observer | None = None,
        models: Catalogue | None = None,
    ) -> Engine:
        """Open the store and start the backend: load the model in its device thread (``local``), or
        connect to Redis and hand jobs to the workers there (``redis``; ``scope`` keeps the keys of a
        command-line run apart from the bot's; ``want_tiles``: have workers send the separate tiles)."""
        if models is None:  # a ConfigError stops here, before any load
            models = await asyncio.to_thread(Catalogue.resolve, settings)
        store = await Store.open(settings.storage.database if database is None else database)
        backend: Backend
        if settings.executor.backend == "redis":
            from bot.remote.dispatcher import RedisBackend

            if want_tiles is None:
                want_tiles = settings.storage.output_dir is not None
            backend = RedisBackend.from_settings(settings, models, want_tiles=want_tiles, scope=scope)
        else:
            from bot.engine.local import LocalBackend

            backend = LocalBackend.from_settings(settings, models, observer=observer)
        try:
            await backend.start()
            readers = await asyncio.to_thread(_prompt_readers, models)
            rows: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
            for guild_id, name, value in await store.server_settings():
                rows[guild_id].append((name, value))
        except BaseException:
            await backend.close()
            await store.close()
            raise
        return cls(
            store,
            backend,
            models,
            output_dir=settings.storage.output_dir,
            prompt_readers=readers,
            observer=observer,
            servers={guild_id: ServerSettings.from_rows(found) for guild_id, found in rows.items()},
        )

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop taking jobs, let the running one finish (up to ``grace``), keep the rest for the next start.

        Every follower then sees its job's outcome (``Interrupted`` for what did not finish) and the
        store stays open, so deliveries can still be recorded.
        """
        await self._backend.close(grace=grace)

    async def close(self, *, grace: float | None = None) -> None:
        if not self._backend.closing:
            await self.stop(grace=grace)
        await self.drain()
        await self._store.close()

    async def drain(self) -> None:
        """Wait until every job's follower has finished (its outcome recorded and handed to its listener)."""
        while self._followers:
            await asyncio.gather(*list(self._followers), return_exceptions=True)

    # --- taking jobs ---

    async def create(self, request: JobRequest) -> Job:
        """Admit and store a job (before the member's interaction is acknowledged).

        Raises :class:`QueueFullError` or :class:`BackendClosedError`, with a text for the member,
        before anything is written when the member or the queue is at its limit. The job counts
        against the limits from here on; pass it to :meth:`start` (or :meth:`abandon`).
        """
        user = request.user_id
        try:
            self._backend.check_capacity(user, pending_user=self._pending[user], pending_total=self._pending.total())
        except (QueueFullError, BackendClosedError) as exc:
            if self._observer is not None:
                self._observer.job_refused(request, exc.text.key)
            raise
        self._pending[user] += 1  # counted while stored-but-not-queued, so concurrent requests see it
        try:
            job = await self._store.create_job(request)
        except BaseException:
            self._release(user)
            raise
        self._admitted.add(job.id)
        if self._observer is not None:
            self._observer.job_submitted(request)
        return job

    def start(self, job: Job, listener: JobListener | None = None) -> JobHandle:
        """Queue a stored job (created by :meth:`create`, or recovered from the store) and follow it.

        When the backend is closing the job is not queued: its handle (and the listener) get
        ``Interrupted`` at once, and it stays stored for the next start.
        """
        if job.id in self._admitted:
            self._admitted.discard(job.id)
            self._release(job.request.user_id)
        replay = job.status.ended_without_images  # recovered: only its outcome is left to tell
        if replay:
            handle = JobHandle(job)
            handle.emit(
                Failed(Text.from_json(job.error) if job.error else Text("failed.internal"))
                if job.status is JobStatus.FAILED
                else Cancelled()
            )
        else:
            try:
                handle = self._backend.submit(job)
            except BackendClosedError:
                handle = JobHandle(job)
                handle.emit(Interrupted())
        self._handles[job.id] = handle
        task = asyncio.create_task(self._follow(handle, listener, record=not replay), name=f"seedgrid-follow-{job.id}")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)
        return handle

    async def submit(self, request: JobRequest, listener: JobListener | None = None) -> JobHandle:
        """Store the job, then queue it (the CLI's way in)."""
        return self.start(await self.create(request), listener)

    async def abandon(self, job: Job, reason: str) -> None:
        """A created job that will not be queued (its interaction could not be acknowledged)."""
        if job.id in self._admitted:
            self._admitted.discard(job.id)
            self._release(job.request.user_id)
        await self._store.mark_undeliverable(job.id, reason)  # never acknowledged: nothing to post, ever

    def cancel(self, job_id: int, *, by: str | None = None) -> bool:
        """Cancel a queued or running job; ``by`` (a display name) is passed on with its ``Cancelled``."""
        handle = self._handles.get(job_id)
        if handle is None or handle.done:
            return False
        if by is not None:
            self._cancelled_by[job_id] = by
        self._backend.cancel(handle)
        return True

    def _release(self, user: int) -> None:
        if self._pending[user] > 0:
            self._pending[user] -= 1
        if self._pending[user] <= 0:
            del self._pending[user]

    # --- looking things up ---

    async def job(self, job_id: int) -> Job | None:
        return await self._store.get_job(job_id)

    async def tile(self, job_id: int, index: int) -> Tile | None:
        """Tile ``index`` (1-based, as numbered on the grid) of a job."""
        return await self._store.get_tile(job_id, index)

    async def recipe(self, job_id: int) -> Recipe | None:
        """The recipe of a finished job's images, as stored when it finished (None before, or for older jobs)."""
        return _recipe(await self._store.get_recipe(job_id))

    async def tile_recipe(self, job: Job, index: int) -> Recipe | None:
        """The recipe of tile ``index`` (1-based) of ``job``: as stored when it finished, else (a job from before
        recipes were kept) rebuilt from the job's request. None when the job has no such tile."""
        stored = await self.recipe(job.id)
        if stored is None:
            preset = self.models.get(job.request.model)
            family = preset.family.name if preset is not None else ""
            stored = Recipe.of(job.request, family=family, scheduler="")
        if not 1 <= index <= len(stored.tiles):
            return None
        return stored.tile(index)

    async def recipe_of_message(self, message_id: int) -> tuple[int, Recipe] | None:
        """``(job id, recipe)`` of the job whose images are on Discord message ``message_id``."""
        found = await self._store.recipe_of_message(message_id)
        if found is None:
            return None
        recipe = _recipe(found[1])
        return None if recipe is None else (found[0], recipe)

    async def undelivered(self) -> list[Job]:
        """Jobs a previous run accepted but never posted, oldest first: run them again from their seeds."""
        return [job for job in await self._store.undelivered() if job.id not in self._handles]

    @property
    def info(self) -> ModelInfo | None:
        """What the first device (or the first live worker) runs: model, device, dtype, scheduler."""
        return self._backend.info

    def max_prompt_tokens(self, model: str = "") -> int:
        """The tokens ``model``'s reading text encoder takes (``""``: the default model's)."""
        reader = self._reader(model)
        return DEFAULT_PROMPT_TOKENS if reader is None else reader.max_prompt_tokens

    async def prompt_overflow(self, prompt: str, model: str = "") -> str | None:
        """The part of ``prompt`` ``model``'s text encoder will not read, or None (tokenized off the event loop)."""
        reader = self._reader(model)
        if reader is None:
            return None
        return await asyncio.to_thread(reader.prompt_overflow, prompt)

    def _reader(self, model: str) -> PromptReader | None:
        preset = self.models.get(model)
        return None if preset is None else self._readers.get(preset.name)

    # --- a server's settings (/settings) ---

    def server(self, guild_id: int | None) -> ServerSettings:
        """A server's defaults and channel policies (nothing set: the file's; direct messages: none)."""
        return self._servers.get(guild_id, NO_SERVER_SETTINGS) if guild_id is not None else NO_SERVER_SETTINGS

    async def set_server_default(self, guild_id: int, name: str, value: str | int | float | None, *, by: int) -> None:
        """Set (None: remove) a member default of a server (``bot.rules.server.DEFAULTS``); applies at once."""
        await self._set_server(guild_id, name, value, by=by)

    async def set_channel_policy(self, guild_id: int, channel_id: int, policy: str | None, *, by: int) -> None:
        """What happens to flagged tiles in one channel (None: as the file says); applies at once."""
        await self._set_server(guild_id, f"{NSFW_PREFIX}{channel_id}", policy, by=by)

    async def set_quota(
        self, guild_id: int, role_id: int, images: int | None, *, gpu_seconds: int | None = None, by: int
    ) -> None:
        """A role's whole daily allowance in this server: images a day a member with it may have drawn, and
        GPU-seconds a day their jobs may take (None: no limit of that kind from this role)."""
        await self._set_server(guild_id, f"{QUOTA_PREFIX}{role_id}", images, by=by)
        await self._set_server(guild_id, f"{GPU_PREFIX}{role_id}", gpu_seconds, by=by)

    async def set_server_policy(self, guild_id: int, name: str, value: object, *, by: int) -> None:
        """Set (None: remove) one of a server's further policies (``bot.rules.server.POLICY_NAMES``: blocklist,
        channels, roles, buttons, suggestions, private), already checked; applies at once."""
        if name not in POLICY_NAMES:
            raise ValueError(f"not a server policy: {name!r}")
        await self._set_server(guild_id, name, list(value) if isinstance(value, tuple) else value, by=by)

    async def quota(self, guild_id: int | None, user_id: int, role_ids: Iterable[int]) -> Quota:
        """A member's allowance in a server today, what is left of it, and when it resets. Counted from
        the store (so it survives restarts): waiting, running and finished jobs count; cancelled and
        failed ones do not."""
        now = time.time()
        start = period_start(now)
        roles = list(role_ids)
        server = self.server(guild_id)
        allowance = server.allowance(roles)  # direct messages: the empty settings, no allowance
        used = 0 if guild_id is None or allowance is None else await self._store.images_since(guild_id, user_id, start)
        gpu_allowance = server.gpu_allowance(roles)
        gpu_used = 0.0
        if guild_id is not None and gpu_allowance is not None:
            gpu_used = await self._store.gpu_seconds_since(guild_id, user_id, start)
        return Quota(
            allowance=allowance, used=used, resets_at=start + DAY, gpu_allowance=gpu_allowance, gpu_used=gpu_used
        )

    # --- a member's own defaults (/preferences) ---

    async def preferences(self, user_id: int) -> Defaults:
        """A member's own defaults (nothing set: the server's, then the file's)."""
        return Defaults.from_rows(await self._store.preferences(user_id))

    async def set_preference(self, user_id: int, name: str, value: str | int | float | None) -> None:
        """Set (None: remove) one of a member's defaults (``bot.rules.server.DEFAULTS``)."""
        await self._store.set_preference(user_id, name, None if value is None else json.dumps(value))

    async def wants_private(self, user_id: int) -> bool:
        """Whether a member asked for their results to be shown to them only (``/preferences private``)."""
        return any(name == "private" and raw == "true" for name, raw in await self._store.preferences(user_id))

    async def set_private(self, user_id: int, private: bool) -> None:
        """Remember whether a member wants their results shown to them only (off: the row is removed)."""
        await self._store.set_preference(user_id, "private", "true" if private else None)

    async def _set_server(self, guild_id: int, name: str, value: object, *, by: int) -> None:
        encoded = None if value is None else json.dumps(value)
        await self._store.set_server_setting(guild_id, name, encoded, by=by)
        rows = [(n, v) for _, n, v in await self._store.server_settings(guild_id)]
        self._servers[guild_id] = ServerSettings.from_rows(rows)
        log.info("server %d: %s set to %s by %d", guild_id, name, "(file default)" if value is None else value, by)

    # --- recording delivery ---

    async def set_message(self, job_id: int, message_id: int, *, reply_token: str | None = None) -> None:
        """The message a job shows itself on (its status, then its outcome).

        ``reply_token``: what reaches that message again for a while (Discord's interaction token, valid
        15 minutes), kept until the job is delivered so that a restart can look at what is already posted.
        """
        token_at = None if reply_token is None else time.time()
        await self._store.set_message(job_id, message_id, reply_token=reply_token, token_at=token_at)

    async def delivering(self, job_id: int) -> None:
        """Posting the outcome starts now: after a crash, look at what Discord has before posting again."""
        await self._store.mark_delivering(job_id)

    async def delivered(self, job_id: int, message_id: int | None) -> None:
        """The outcome is posted: a restart will not run or post this job again."""
        await self._store.mark_delivered(job_id, message_id)

    async def undeliverable(self, job_id: int, reason: str) -> None:
        """Discord refused the outcome for good, or for too long: the job failed, and is not posted again."""
        await self._store.mark_undeliverable(job_id, reason)

    # --- for admins ---

    async def store_writable(self) -> bool:
        """Whether the store takes a write now (``/readyz``)."""
        return await self._store.writable()

    async def status(self, *, since: float | None) -> EngineStatus:
        """Model, queue and workers now; the run times of jobs finished since ``since`` (a ``time.time()``;
        None: none are read, ``run_times`` is empty)."""
        backend = self._backend
        return EngineStatus(
            model=backend.info,
            waiting=backend.queue_depth,
            running=len(backend.running),
            paused=backend.paused,
            workers=backend.workers,
            run_times=[] if since is None else await self._store.finished_since(since),
            waiting_for_delivery=await self._store.waiting_for_delivery(),
        )

    def queue(self) -> QueueListing:
        return QueueListing(running=self._backend.running, waiting=self._backend.waiting)

    def pause(self) -> None:
        """Refuse new jobs and start no queued ones until :meth:`resume` (running jobs finish)."""
        self._backend.pause()

    def resume(self) -> None:
        self._backend.resume()

    async def wait_for_workers(self, patience: float, *, count: int = 1) -> list[WorkerInfo] | None:
        """With the redis backend: the live workers, once there are ``count`` (``TimeoutError`` after ``patience`` s).

        None for the local backend, which needs no workers.
        """
        backend = self._backend
        if backend.workers is None:
            return None
        deadline = time.monotonic() + patience
        while len(backend.workers or ()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker within {patience:.0f} s")
            await asyncio.sleep(0.5)
            await backend.refresh_workers()
        return backend.workers

    # --- the follower of one job ---

    async def _follow(self, handle: JobHandle, listener: JobListener | None, *, record: bool = True) -> None:
        job = handle.job
        JOB.set(job.id)  # this task's log lines (the delivery's too) are about this job
        try:
            async for reported in handle.events():
                event = reported
                if isinstance(event, Cancelled) and event.by is None:
                    event = Cancelled(by=self._cancelled_by.get(job.id))
                if record:
                    await self._record(job, event)
                if listener is not None:
                    try:
                        await listener(event)
                    except Exception:
                        log.exception("job %d: its listener failed on %s", job.id, type(event).__name__)
                if isinstance(event, Done) and self._output_dir is not None:
                    await self._save(job, event.result, self._output_dir)
        finally:
            self._handles.pop(job.id, None)
            self._cancelled_by.pop(job.id, None)

    async def _record(self, job: Job, event: Event) -> None:
        try:
            if isinstance(event, Started):
                await self._store.mark_running(job.id)
            elif isinstance(event, Done):
                await self._store.mark_finished(job.id, JobStatus.DONE, elapsed=event.result.elapsed)
                recipe = read_text_chunks(event.result.grid_png, keys=frozenset({RECIPE_KEY})).get(RECIPE_KEY)
                if recipe is not None:  # kept: Discord may serve copies of the image without its chunks
                    await self._store.set_recipe(job.id, recipe)
            elif isinstance(event, Failed):
                await self._store.mark_finished(job.id, JobStatus.FAILED, error=event.reason.to_json())
            elif isinstance(event, Cancelled):
                await self._store.mark_finished(job.id, JobStatus.CANCELLED)
            # Interrupted: left queued/running in the store, to run again at the next start
        except Exception:
            log.exception("could not record %s for job %d", type(event).__name__, job.id)
        if self._observer is not None:
            self._observer.job_event(job, event)

    async def _save(self, job: Job, result: JobResult, output_dir: Path) -> None:
        try:
            folder = output_dir / f"job-{job.id:06d}"
            await aiofiles.os.makedirs(folder, exist_ok=True)
            files: dict[str, bytes] = {"grid.png": result.grid_png}
            tiles = await asyncio.to_thread(result.images.pngs)  # encoded on demand, off the event loop
            files.update({f"tile-{i}.png": data for i, data in enumerate(tiles, start=1)})
            request = asdict(job.request)
            request["kind"] = job.request.kind.value
            params = {
                "job": job.id,
                "request": request,
                "tiles": [{"index": i, "prompt": t.prompt, "seed": t.seed} for i, t in enumerate(result.tiles, 1)],
                "elapsed": result.elapsed,
            }
            files["params.json"] = json.dumps(params, indent=2, ensure_ascii=False).encode()
            for name, data in files.items():
                async with aiofiles.open(folder / name, "wb") as f:
                    await f.write(data)
            log.debug("saved job %d to %s", job.id, folder)
        except Exception:
            log.exception("could not save job %d to the output folder", job.id)


def _recipe(text: str | None) -> Recipe | None:
    if text is None:
        return None
    try:
        return Recipe.from_json(text)
    except RecipeError:
        log.warning("a stored recipe could not be read", exc_info=True)
        return None


def _prompt_readers(models: Catalogue) -> dict[str, PromptReader | None]:
    """Each model's reading tokenizer (a few MB each, no weights). Blocking."""
    from bot.diffusion.prompts import PromptLimit

    return {preset.name: PromptLimit.load(preset.id, preset.family) for preset in models}
