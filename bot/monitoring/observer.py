"""What the core tells whoever watches it: the hooks the engine, the backends, the renderer and a worker call.

:class:`bot.monitoring.metrics.Metrics` implements it. Every hook is optional (``None`` means nobody
watches, and nothing is recorded), cheap, and never raises. All of them are called on the event loop,
except :meth:`Observer.oom_split`, which the renderer calls from its device's thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.engine.events import Event
    from bot.jobs import Job, JobRequest


class Observer(Protocol):
    def job_submitted(self, request: JobRequest) -> None:
        """A job was admitted and stored (:meth:`bot.engine.Engine.create`)."""

    def job_refused(self, request: JobRequest, reason: str) -> None:
        """A job was refused before anything was stored; ``reason`` is its text's key (``refused.queue_full``)."""

    def job_event(self, job: Job, event: Event) -> None:
        """Every event of a job, in order, as its follower (or a worker) sees it."""

    def model_loaded(self, device: str, model: str, seconds: float) -> None:
        """A device finished loading ``model`` (an id or a folder) in ``seconds``."""

    def oom_split(self, device: str) -> None:
        """A batch ran out of device memory and is retried in two halves (from the device's thread)."""

    def job_claimed(self) -> None:
        """A worker took over the job of a worker that stopped sending heartbeats."""

    def dead_lettered(self, reason: str) -> None:
        """A worker set a job aside in the dead-letter stream; ``reason`` is ``deliveries`` or ``unreadable``."""
