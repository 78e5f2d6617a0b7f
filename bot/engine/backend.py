"""The one interface every backend implements, and the queue they all share.

A backend runs jobs: :class:`bot.engine.local.LocalBackend` in this process's device threads,
:class:`bot.remote.dispatcher.RedisBackend` on GPU workers reached through Redis. Both keep the
same asyncio front, written once here: a round-robin queue (one job per member per turn), live
queue positions, the member and queue limits, pause/resume, cancelling queued jobs, and the
order of a shutdown. What differs — how a job popped from the queue is run, how running jobs
are waited for and let go at shutdown — is what a subclass provides.

The engine is the only caller::

    backend.check_capacity(user)       # QueueFullError / BackendClosedError, with a text for the member
    handle = backend.submit(job)       # JobHandle: Queued(position), Started, Progress, Preview, then the outcome
    backend.cancel(handle)
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from bot.config import ExecutorSettings
from bot.engine.events import Cancelled, Interrupted, JobHandle, Queued, StopReason
from bot.engine.fairqueue import FairQueue
from bot.jobs import Job
from bot.texts import Text

log = logging.getLogger(__name__)


class BackendClosedError(RuntimeError):
    """The backend is shutting down and takes no more jobs."""

    def __init__(self) -> None:
        self.text = Text("refused.restarting")
        super().__init__(str(self.text))


class QueueFullError(RuntimeError):
    """A job was refused because the member or the whole queue is at its limit; ``text`` says which."""

    def __init__(self, text: Text) -> None:
        self.text = text
        super().__init__(str(text))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a device (or a worker) has loaded, for logs, ``/seedgrid status`` and the CLI's ``check``."""

    model: str
    device: str
    dtype: str
    scheduler: str
    safety_checker: bool = False
    """Whether every batch goes through the model's safety checker (it has one, and it is on)."""
    speed: tuple[str, ...] = ()
    """The speed options in effect (e.g. sdpa, channels_last, fuse_qkv, compile)."""
    family: str = ""
    """The model's family (:mod:`bot.diffusion.families`: sd1, sdxl, flux-dev, …)."""
    models: tuple[str, ...] = ()
    """The configured models (their names) this device or worker serves."""
    loaded: tuple[str, ...] = ()
    """Those of them it holds loaded now."""


UNKNOWN_MODEL = ModelInfo(model="?", device="?", dtype="?", scheduler="?", safety_checker=True)
"""What a worker that has not described itself is taken to run (a safety checker included, to be safe)."""


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A live worker of a remote backend, as it describes itself."""

    name: str
    model: ModelInfo = UNKNOWN_MODEL
    """What it loaded, as its :attr:`Backend.info` says."""
    job: int | None = None
    """The job it is running, if any."""

    @property
    def device(self) -> str:
        return self.model.device


class PromptReader(Protocol):
    """Where the model's text encoder cuts a prompt (a loaded pipeline, or just its tokenizer)."""

    @property
    def max_prompt_tokens(self) -> int: ...

    def prompt_overflow(self, prompt: str) -> str | None: ...


class Backend(abc.ABC):
    """The shared front of every backend; subclasses run what :meth:`_pop_ready` hands them."""

    def __init__(self, settings: ExecutorSettings | None = None) -> None:
        self.settings = settings or ExecutorSettings()
        self._queue: FairQueue[int, JobHandle] = FairQueue()
        self._nonempty = asyncio.Event()
        self._closing = False
        self._resumed = asyncio.Event()  # cleared while an admin has paused the queue
        self._resumed.set()

    # --- what each backend provides ---

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model or connect; then take jobs."""

    @property
    @abc.abstractmethod
    def running(self) -> list[Job]:
        """Jobs popped from the queue and not yet ended (running, or handed to a worker)."""

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo | None:
        """What the first device or live worker runs, or None (no worker connected yet)."""

    @property
    def workers(self) -> list[WorkerInfo] | None:
        """The live workers of a remote backend; None for a backend that runs jobs itself."""
        return None

    async def refresh_workers(self) -> None:  # noqa: B027 - a no-op for backends without workers
        """Look again for live workers (a remote backend also does this on its own, every few seconds)."""

    @abc.abstractmethod
    def _running_ends(self) -> list[Awaitable[object]]:
        """One awaitable per running job, done when that job has ended (or been let go)."""

    @abc.abstractmethod
    def _let_go_running(self) -> None:
        """The grace period is over: stop following or running what is still running (it runs again later)."""

    @abc.abstractmethod
    async def _shut_down(self) -> None:
        """Release threads, tasks and connections once nothing runs any more."""

    # --- shared: queue, limits, pause, cancel, shutdown ---

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

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
        """Refuse new jobs and start no queued ones (running jobs finish); queued jobs are kept."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def active_jobs(self, user_id: int) -> int:
        """A member's queued and running jobs."""
        return self._queue.count(user_id) + sum(1 for job in self.running if job.request.user_id == user_id)

    def check_capacity(self, user_id: int, *, pending_user: int = 0, pending_total: int = 0) -> None:
        """Raise :class:`QueueFullError` (or :class:`BackendClosedError`) if one more job must be refused.

        ``pending_*`` count jobs admitted but not yet submitted (being written to the store).
        """
        if self._closing:
            raise BackendClosedError
        if self.paused:
            raise QueueFullError(Text("refused.paused"))
        limits = self.settings
        if self.active_jobs(user_id) + pending_user >= limits.per_user_limit:
            raise QueueFullError(Text("refused.member_limit", limit=limits.per_user_limit))
        if len(self._queue) + len(self.running) + pending_total >= limits.queue_limit:
            raise QueueFullError(Text("refused.queue_full", limit=limits.queue_limit))

    def submit(self, job: Job) -> JobHandle:
        """Queue a job; its handle reports ``Queued(position)`` at once. Limits are checked by the caller."""
        if self._closing:
            raise BackendClosedError
        handle = JobHandle(job)
        self._push(handle)
        return handle

    def cancel(self, handle: JobHandle) -> None:
        """Cancel a job: removed at once if queued, stopped at its next step if running."""
        handle.stop(StopReason.CANCEL)
        if self._queue.remove(handle.job.request.user_id, handle):
            handle.emit(Cancelled())
            self._announce_positions()

    async def close(self, *, grace: float | None = None) -> None:
        """Stop taking jobs; give running jobs ``grace`` seconds (default ``executor.shutdown_timeout``).

        Queued jobs, and running jobs still going after the grace period, end with
        :class:`Interrupted`: they stay stored and run at the next start.
        """
        grace = self.settings.shutdown_timeout if grace is None else grace
        self._closing = True
        for handle in self._queue.drain():
            handle.emit(Interrupted())
        ends = [asyncio.ensure_future(end) for end in self._running_ends()]
        if ends:
            log.info("waiting up to %.0f s for %d running job(s) to finish", grace, len(ends))
            _, pending = await asyncio.wait(ends, timeout=grace)
            if pending:
                self._let_go_running()
                await asyncio.gather(*pending, return_exceptions=True)
        self._nonempty.set()
        await self._shut_down()

    # --- for subclasses ---

    def _push(self, handle: JobHandle) -> None:
        """Queue a handle (a new job, or one that has to go back in the queue)."""
        self._queue.push(handle.job.request.user_id, handle)
        self._announce_positions()
        self._nonempty.set()

    def _pop_ready(self) -> JobHandle | None:
        """The next job to run, or None when the queue is empty, paused or closing.

        Jobs cancelled while queued are ended here. The caller reports the end of the returned
        job's turn with :meth:`_turn_over`.
        """
        while self._queue and not self.paused and not self._closing:
            handle = self._queue.pop()
            self._announce_positions()
            if not handle.cancel_requested:
                return handle
            handle.emit(Cancelled())
            self._turn_over(handle)
        return None

    async def _next(self) -> JobHandle | None:
        """Wait for the next job to run; None once the backend is closing."""
        while not self._closing:
            handle = self._pop_ready()
            if handle is not None:
                return handle
            self._nonempty.clear()
            await self._resumed.wait()
            if not self._queue and not self._closing:
                await self._nonempty.wait()
        return None

    def _turn_over(self, handle: JobHandle) -> None:
        """A popped job has ended (or gone back): its member's turn is over."""
        self._queue.finished(handle.job.request.user_id)

    def _announce_positions(self) -> None:
        for position, handle in enumerate(self._queue, start=1):
            handle.emit(Queued(position))
