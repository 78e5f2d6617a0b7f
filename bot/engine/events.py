"""What happens to a job, as events, and the handle that carries them.

A backend (:mod:`bot.engine.local` in this process, :mod:`bot.remote.dispatcher` on other
machines) reports every job through its :class:`JobHandle`::

    handle.emit(Queued(3)) … handle.emit(Started()) … handle.emit(Progress(5, 30)) … handle.emit(Done(result))

and the engine's one follower of that job reads them back with :meth:`JobHandle.events`.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bot.jobs import Job, JobResult, RenderCancelled
from bot.texts import Text


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
class Loading:
    model: str
    """The configured model's name: its device loads it for this job (seconds to minutes)."""


@dataclass(frozen=True, slots=True)
class Failed:
    reason: Text
    """A sentence fit for a member, in any language; the traceback goes to the log only."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    by: str | None = None
    """Who cancelled it, as the engine was told (a display name), when known."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """The bot is shutting down: the job was not finished and stays stored, to run at the next start."""


Terminal = Done | Failed | Cancelled | Interrupted
TERMINAL = (Done, Failed, Cancelled, Interrupted)
Event = Queued | Started | Loading | Progress | Preview | Terminal


class StopReason(enum.Enum):
    """Why a job was asked to stop: it decides the job's outcome once its render stops."""

    CANCEL = "cancel"
    """A member or an admin cancelled it → :class:`Cancelled`."""
    TIMEOUT = "timeout"
    """It ran past ``executor.job_timeout`` → :class:`Failed`."""
    SHUTDOWN = "shutdown"
    """The backend is closing and the grace period is over → :class:`Interrupted`."""


class JobHandle:
    """The asyncio side of one job: its events, its outcome, and a way to stop it.

    Backends :meth:`emit` events (on the event loop); the device thread only polls
    :meth:`should_stop` between denoising steps.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.started = asyncio.Event()
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._outcome: asyncio.Future[Terminal] = asyncio.get_running_loop().create_future()
        self._stop = threading.Event()  # read by the worker thread between steps
        self._stop_reason: StopReason | None = None
        self._last_position: int | None = None

    @property
    def done(self) -> bool:
        return self._outcome.done()

    @property
    def stop_reason(self) -> StopReason | None:
        """Why :meth:`stop` was called first, or None while nobody asked."""
        return self._stop_reason

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def should_stop(self) -> bool:
        """Polled by the render between steps (thread-safe)."""
        return self._stop.is_set()

    def stop(self, reason: StopReason = StopReason.CANCEL) -> None:
        """Ask the job to stop: a queued job leaves the queue, a running one stops at its next step."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def stopped_outcome(self, timeout: float) -> Terminal:
        """The outcome of a render that stopped because :meth:`stop` was called."""
        if self._stop_reason is StopReason.SHUTDOWN:
            return Interrupted()
        if self._stop_reason is StopReason.TIMEOUT:
            return Failed(Text("failed.timeout", seconds=round(timeout)))
        return Cancelled()

    def emit(self, event: Event) -> None:
        """Report an event (on the event loop). Repeated positions and anything after the outcome are dropped."""
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

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, ending with the terminal one. For one consumer: the engine's follower."""
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
