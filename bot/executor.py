"""The asyncio-guarded executor: the only way work reaches the pipeline.

One worker thread per device owns that device's renderer (and so its diffusers pipeline,
whose scheduler is stateful and not thread-safe). The asyncio side owns everything else:
the queue, queue positions, cancellation and the event stream of every job. Nothing here
blocks the event loop: the render runs in the device's thread and reports back through
``loop.call_soon_threadsafe``.

The boundary is deliberately small, so that a remote backend can replace it::

    handle = executor.submit(job)        # JobHandle
    async for event in handle.events():  # Queued, Started, Progress, then Done | Failed | Cancelled
        ...
    handle.cancel()
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from .config import ExecutorSettings
from .fairqueue import FairQueue
from .jobs import Job, JobResult, RenderCancelled

log = logging.getLogger(__name__)


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    position: int
    """1 = next to run."""


@dataclass(frozen=True, slots=True)
class Started:
    pass


@dataclass(frozen=True, slots=True)
class Progress:
    step: int
    total: int
    elapsed: float = 0.0
    """Seconds since the job started running, for an estimate of the time left."""

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far, or None before the first step."""
        if self.step <= 0 or self.elapsed <= 0:
            return None
        return self.elapsed / self.step * (self.total - self.step)


@dataclass(frozen=True, slots=True)
class Preview:
    step: int
    image: bytes
    """A small encoded picture of the tiles at this step (decoded cheaply from the latents)."""


@dataclass(frozen=True, slots=True)
class Done:
    result: JobResult


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str
    """A sentence fit for a member; the traceback goes to the log only."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    pass


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The bot is shutting down: the job was not finished and stays stored, to run at the next start."""


Terminal = Done | Failed | Cancelled | Interrupted
TERMINAL = (Done, Failed, Cancelled, Interrupted)
Event = Queued | Started | Progress | Preview | Terminal


StepCallback = Callable[[int, int], None]
"""``on_step(step, total)``: called from the worker thread after each denoising step."""
PreviewCallback = Callable[[int, bytes], None]
"""``on_preview(step, image)``: an encoded preview, called from the worker thread every few steps."""


class Renderer(Protocol):
    """Turns a job into a result, blocking, in its device's thread."""

    def render(
        self,
        job: Job,
        on_step: StepCallback,
        should_stop: Callable[[], bool],
        on_preview: PreviewCallback | None = None,
    ) -> JobResult: ...


RendererFactory = Callable[[], Renderer]
"""Builds a renderer (loads the model). Called once, in the device's own thread."""


class ExecutorClosedError(RuntimeError):
    """Raised by :meth:`Executor.submit` once the executor is shutting down."""


class QueueFullError(RuntimeError):
    """A job was refused because the member or the whole queue is at its limit; the message says which."""


# --- job handles -------------------------------------------------------------------------------


class JobHandle:
    """The asyncio side of one job: its events, its outcome, and a way to cancel it."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.started = asyncio.Event()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._outcome: asyncio.Future[Terminal] = asyncio.get_running_loop().create_future()
        self._stop = threading.Event()  # read by the worker thread between steps
        self._last_position: int | None = None
        self._timed_out = False
        self._interrupted = False

    @property
    def done(self) -> bool:
        return self._outcome.done()

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, ending with the terminal one. Meant for one consumer (the UI)."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, TERMINAL):
                return

    async def wait(self) -> Terminal:
        """The terminal event; any number of tasks may wait for it."""
        return await asyncio.shield(self._outcome)

    async def result(self) -> JobResult:
        """The result, or ``RuntimeError`` with the reason when the job failed or was cancelled."""
        outcome = await self.wait()
        if isinstance(outcome, Done):
            return outcome.result
        if isinstance(outcome, Failed):
            raise RuntimeError(f"job {self.job.id} failed: {outcome.reason}")
        if isinstance(outcome, Interrupted):
            raise RuntimeError(f"job {self.job.id} was interrupted by a shutdown")
        raise RenderCancelled(f"job {self.job.id} was cancelled")

    def cancel(self) -> None:
        """Ask for cancellation: a queued job leaves the queue, a running one stops at its next step."""
        self._stop.set()

    def _emit(self, event: Event) -> None:
        if self._outcome.done():
            return
        if isinstance(event, Queued):
            if event.position == self._last_position:
                return
            self._last_position = event.position
        if isinstance(event, Started):
            self.started.set()
        self._events.put_nowait(event)
        if isinstance(event, TERMINAL):
            self._outcome.set_result(event)


# --- the executor ------------------------------------------------------------------------------


class _Device:
    """One worker thread and the renderer that lives in it."""

    def __init__(self, name: str, factory: RendererFactory) -> None:
        self.name = name
        self.factory = factory
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seedgrid-{name}")
        self.renderer: Renderer | None = None
        self.busy_with: JobHandle | None = None
        self.idle = asyncio.Event()
        self.idle.set()


class QueueFront:
    """The asyncio side every backend shares: a round-robin queue (one job per member per turn),
    live queue positions, limits, pause/resume and cancelling queued jobs.

    Subclasses run what :meth:`_next` hands them: :class:`Executor` in its device threads,
    :class:`bot.dispatch.RedisExecutor` on remote workers.
    """

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings()
        self._queue: FairQueue[int, JobHandle] = FairQueue()
        self._nonempty = asyncio.Event()
        self._closing = False
        self._resumed = asyncio.Event()  # cleared while an admin has paused the queue
        self._resumed.set()

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self, *, grace: float | None = None) -> None:
        raise NotImplementedError

    @property
    def renderers(self) -> list[Renderer]:
        """The renderers of this process's devices (none when the work runs elsewhere)."""
        return []

    @property
    def info(self) -> Any:
        """What the first device or worker runs (a :class:`bot.pipeline.PipelineInfo`), or None."""
        for renderer in self.renderers:
            info = getattr(renderer, "info", None)
            if info is not None:
                return info
        return None

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> list[Job]:
        raise NotImplementedError

    @property
    def waiting(self) -> list[Job]:
        """Queued jobs in the order they will run."""
        return [h.job for h in self._queue]

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> None:
        """Refuse new jobs and start no queued ones (the running job finishes); queued jobs are kept."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def active_jobs(self, user_id: int) -> int:
        """A member's queued and running jobs."""
        return self._queue.count(user_id) + sum(1 for job in self.running if job.request.user_id == user_id)

    def check_capacity(self, user_id: int, *, pending_user: int = 0, pending_total: int = 0) -> None:
        """Raise :class:`QueueFullError` (or :class:`ExecutorClosedError`) if one more job must be refused.

        ``pending_*`` count jobs admitted but not yet submitted (being written to the store).
        """
        if self._closing:
            raise ExecutorClosedError("The bot is restarting; try again in a minute.")
        if self.paused:
            raise QueueFullError("The bot's admins have paused new jobs for now; try again later.")
        limits = self.settings
        if self.active_jobs(user_id) + pending_user >= limits.per_user_limit:
            raise QueueFullError(
                f"You already have {limits.per_user_limit} jobs waiting or running; "
                "wait for one to finish (or cancel one) before starting another."
            )
        if len(self._queue) + len(self.running) + pending_total >= limits.queue_limit:
            raise QueueFullError(f"The queue is full ({limits.queue_limit} jobs); try again in a few minutes.")

    def submit(self, job: Job) -> JobHandle:
        """Queue a job; its handle reports ``Queued(position)`` at once. Limits are checked by the caller."""
        if self._closing:
            raise ExecutorClosedError("the executor is shutting down")
        handle = JobHandle(job)
        self._push(handle)
        return handle

    def _push(self, handle: JobHandle) -> None:
        self._queue.push(handle.job.request.user_id, handle)
        self._announce_positions()
        self._nonempty.set()

    def cancel(self, handle: JobHandle) -> None:
        """Cancel a job: removed at once if queued, stopped at its next step if running."""
        handle.cancel()
        if self._queue.remove(handle.job.request.user_id, handle):
            handle._emit(Cancelled())
            self._announce_positions()

    def _announce_positions(self) -> None:
        for position, handle in enumerate(self._queue, start=1):
            handle._emit(Queued(position))

    async def _next(self) -> JobHandle:
        while not self._queue or self.paused:
            self._nonempty.clear()
            await self._resumed.wait()
            if not self._queue:
                await self._nonempty.wait()
        handle = self._queue.pop()
        self._announce_positions()
        return handle


class Executor(QueueFront):
    """The in-process backend: :class:`QueueFront` in front of one worker thread per device."""

    def __init__(self, factories: dict[str, RendererFactory], settings: ExecutorSettings | None = None) -> None:
        if not factories:
            raise ValueError("an executor needs at least one device")
        super().__init__(settings)
        self._devices = [_Device(name, factory) for name, factory in factories.items()]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load every device's renderer in its own thread, then start taking jobs."""
        loop = asyncio.get_running_loop()
        for device in self._devices:
            started = time.perf_counter()
            device.renderer = await loop.run_in_executor(device.thread, device.factory)
            log.info("device %s ready in %.1f s", device.name, time.perf_counter() - started)
            self._tasks.append(asyncio.create_task(self._work(device), name=f"seedgrid-worker-{device.name}"))

    @property
    def renderers(self) -> list[Renderer]:
        return [d.renderer for d in self._devices if d.renderer is not None]

    @property
    def running(self) -> list[Job]:
        return [d.busy_with.job for d in self._devices if d.busy_with is not None]

    async def close(self, *, grace: float | None = None) -> None:
        """Stop taking jobs; give running jobs ``grace`` seconds to finish, then stop them.

        Jobs still queued, and running jobs stopped here, end with :class:`Interrupted`: they were
        not finished and are left for the next start. Then the worker threads are released.
        """
        grace = self.settings.shutdown_timeout if grace is None else grace
        self._closing = True
        for handle in self._queue.drain():
            handle._emit(Interrupted())
        busy = [d for d in self._devices if d.busy_with is not None]
        if busy:
            log.info("waiting up to %.0f s for %d running job(s) to finish", grace, len(busy))
            try:
                await asyncio.wait_for(asyncio.gather(*(d.idle.wait() for d in busy)), grace)
            except TimeoutError:
                for device in busy:
                    if device.busy_with is not None:
                        device.busy_with._interrupted = True
                        device.busy_with.cancel()
                await asyncio.gather(*(d.idle.wait() for d in busy))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for device in self._devices:
            await loop.run_in_executor(None, device.thread.shutdown, True)

    # --- internals ---

    async def _work(self, device: _Device) -> None:
        while True:
            handle = await self._next()
            if handle.cancel_requested:
                handle._emit(Cancelled())
                self._queue.finished(handle.job.request.user_id)
                continue
            device.busy_with = handle
            device.idle.clear()
            try:
                await self._run(device, handle)
            finally:
                device.busy_with = None
                device.idle.set()
                self._queue.finished(handle.job.request.user_id)

    async def _run(self, device: _Device, handle: JobHandle) -> None:
        loop = asyncio.get_running_loop()
        renderer = device.renderer
        assert renderer is not None
        handle._emit(Started())
        started = time.perf_counter()

        def on_step(step: int, total: int) -> None:
            loop.call_soon_threadsafe(handle._emit, Progress(step, total, time.perf_counter() - started))

        def on_preview(step: int, image: bytes) -> None:
            loop.call_soon_threadsafe(handle._emit, Preview(step, image))

        def over_time() -> None:
            handle._timed_out = True
            handle.cancel()

        timer = loop.call_later(self.settings.job_timeout, over_time)
        try:
            result = await loop.run_in_executor(
                device.thread, renderer.render, handle.job, on_step, handle._stop.is_set, on_preview
            )
        except RenderCancelled:
            if handle._interrupted:
                handle._emit(Interrupted())
            elif handle._timed_out:
                log.warning("job %d stopped: over the %.0f s time limit", handle.job.id, self.settings.job_timeout)
                handle._emit(Failed(f"stopped after {self.settings.job_timeout:.0f} s, the time limit for one job"))
            else:
                handle._emit(Cancelled())
        except Exception as exc:
            log.exception("job %d failed on %s", handle.job.id, device.name)
            handle._emit(Failed(_describe(exc)))
        else:
            log.info("job %d done on %s in %.2f s", handle.job.id, device.name, result.elapsed)
            handle._emit(Done(result))
        finally:
            timer.cancel()


def _describe(exc: BaseException) -> str:
    """A member-facing reason: clear for bad input, discreet for internal errors."""
    if isinstance(exc, ValueError):
        return str(exc)
    name = type(exc).__name__
    if "OutOfMemory" in name:
        return "the GPU ran out of memory; try a smaller size or fewer steps"
    return "generation failed with an internal error (details are in the bot's log)"
