"""The engine: store + executor + output folder, the one thing the cogs and the CLI talk to.

``submit`` writes the job (and its tile seeds) to the store first, then queues it; a
background task follows each job and records its state (queued → running → done / failed /
cancelled) and, when the config names an output folder, saves the images there with
aiofiles so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiofiles
import aiofiles.os

from .executor import Cancelled, Done, Executor, Failed, JobHandle, QueueFront
from .jobs import Job, JobRequest, JobResult, JobStatus
from .store import Store

if TYPE_CHECKING:
    from .config import Settings
    from .pipeline import PipelineInfo

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self, store: Store, executor: QueueFront, *, output_dir: Path | None = None, prompt_limit: Any = None
    ) -> None:
        self.store = store
        self.executor = executor
        self.output_dir = output_dir
        self._prompt_limit = prompt_limit  # a PromptLimit when the model is not loaded here
        self._handles: dict[int, JobHandle] = {}
        self._trackers: set[asyncio.Task[None]] = set()
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
    ) -> Engine:
        """Open the store and start the backend: load the model in its device thread (``local``), or
        connect to Redis and hand jobs to the workers there (``redis``; ``scope`` keeps the keys of a
        command-line run apart from the bot's)."""
        store = await Store.open(settings.storage.database if database is None else database)
        executor: QueueFront
        if settings.executor.backend == "redis":
            from .dispatch import RedisExecutor

            if want_tiles is None:
                want_tiles = settings.storage.output_dir is not None
            executor = RedisExecutor(settings.redis, settings.executor, want_tiles=want_tiles, scope=scope)
            from .pipeline import PromptLimit

            prompt_limit = await asyncio.to_thread(PromptLimit.load, settings.model)
        else:
            from .render import PipelineRenderer  # torch and diffusers load here, not on import

            load = partial(
                PipelineRenderer.load,
                settings.model,
                preview_every=settings.executor.preview_every,
                safety_checker=settings.safety.checker,
                warm_up=[(size.width, size.height) for size in settings.generation.sizes],
            )
            executor = Executor({settings.model.device: load}, settings.executor)
            prompt_limit = None
        try:
            await executor.start()
        except BaseException:
            await executor.close()
            await store.close()
            raise
        return cls(store, executor, output_dir=settings.storage.output_dir, prompt_limit=prompt_limit)

    async def stop(self, *, grace: float | None = None) -> None:
        """Stop taking jobs, let the running one finish (up to ``grace``), keep the rest for the next start.

        The store stays open, so whoever follows the jobs can still record their delivery.
        """
        await self.executor.close(grace=grace)
        await self.drain()

    async def close(self, *, grace: float | None = None) -> None:
        if not self.executor.closing:
            await self.stop(grace=grace)
        await self.store.close()

    async def undelivered(self) -> list[Job]:
        """Jobs a previous run accepted but never posted, oldest first: run them again from their seeds."""
        return [job for job in await self.store.undelivered() if job.id not in self._handles]

    @property
    def info(self) -> PipelineInfo | None:
        """What the first device (or the first live worker) runs: model, device, dtype, scheduler."""
        return cast("PipelineInfo | None", self.executor.info)

    @property
    def max_prompt_tokens(self) -> int:
        pipeline = self._pipeline()
        return 77 if pipeline is None else int(pipeline.max_prompt_tokens)

    async def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the text encoder will not read, or None (tokenized off the event loop)."""
        pipeline = self._pipeline()
        if pipeline is None:
            return None
        result = await asyncio.to_thread(pipeline.prompt_overflow, prompt)
        return cast("str | None", result)

    def _pipeline(self) -> Any:
        """Whatever knows the model's prompt limit: a loaded pipeline, or (redis backend) its tokenizer."""
        for renderer in self.executor.renderers:
            pipeline = getattr(renderer, "pipeline", None)
            if pipeline is not None:
                return pipeline
        return self._prompt_limit

    async def create(self, request: JobRequest) -> Job:
        """Admit and store a job (before the member's interaction is acknowledged).

        Raises :class:`QueueFullError` or :class:`ExecutorClosedError`, with a message for the
        member, before anything is written when the member or the queue is at its limit. The job
        counts against the limits from here on; pass it to :meth:`start` (or :meth:`abandon`).
        """
        user = request.user_id
        self.executor.check_capacity(user, pending_user=self._pending[user], pending_total=self._pending.total())
        self._pending[user] += 1  # counted while stored-but-not-queued, so concurrent requests see it
        try:
            job = await self.store.create_job(request)
        except BaseException:
            self._release(user)
            raise
        self._admitted.add(job.id)
        return job

    def start(self, job: Job) -> JobHandle:
        """Queue a stored job (created by :meth:`create`, or recovered from the store)."""
        handle = self._queue(job)
        if job.id in self._admitted:
            self._admitted.discard(job.id)
            self._release(job.request.user_id)
        return handle

    async def abandon(self, job: Job, reason: str) -> None:
        """A created job that will not be queued (its interaction could not be acknowledged)."""
        if job.id in self._admitted:
            self._admitted.discard(job.id)
            self._release(job.request.user_id)
        await self.store.mark_finished(job.id, JobStatus.FAILED, error=reason)

    def _release(self, user: int) -> None:
        if self._pending[user] > 0:
            self._pending[user] -= 1
        if self._pending[user] <= 0:
            del self._pending[user]

    async def submit(self, request: JobRequest) -> JobHandle:
        """Store the job, then queue it."""
        return self.start(await self.create(request))

    def handle(self, job_id: int) -> JobHandle | None:
        """The live handle of a queued or running job."""
        return self._handles.get(job_id)

    def cancel(self, job_id: int) -> bool:
        handle = self._handles.get(job_id)
        if handle is None or handle.done:
            return False
        self.executor.cancel(handle)
        return True

    async def drain(self) -> None:
        """Wait until every tracked job has been recorded (used by the CLI and at shutdown)."""
        while self._trackers:
            await asyncio.gather(*list(self._trackers), return_exceptions=True)

    def _queue(self, job: Job) -> JobHandle:
        handle = self.executor.submit(job)
        self._handles[job.id] = handle
        task = asyncio.create_task(self._track(handle), name=f"seedgrid-track-{job.id}")
        self._trackers.add(task)
        task.add_done_callback(self._trackers.discard)
        return handle

    async def _track(self, handle: JobHandle) -> None:
        job_id = handle.job.id
        try:
            started = asyncio.create_task(handle.started.wait())
            outcome_task = asyncio.create_task(handle.wait())
            await asyncio.wait({started, outcome_task}, return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                await self.store.mark_running(job_id)
            else:
                started.cancel()
            outcome = await outcome_task
            if isinstance(outcome, Done):
                await self.store.mark_finished(job_id, JobStatus.DONE, elapsed=outcome.result.elapsed)
                if self.output_dir is not None:
                    await self._save(handle.job, outcome.result)
            elif isinstance(outcome, Failed):
                await self.store.mark_finished(job_id, JobStatus.FAILED, error=outcome.reason)
            elif isinstance(outcome, Cancelled):
                await self.store.mark_finished(job_id, JobStatus.CANCELLED)
            # Interrupted: left queued/running in the store, to run again at the next start
        except Exception:
            log.exception("could not record the outcome of job %d", job_id)
        finally:
            self._handles.pop(job_id, None)

    async def _save(self, job: Job, result: JobResult) -> None:
        assert self.output_dir is not None
        folder = self.output_dir / f"job-{job.id:06d}"
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
