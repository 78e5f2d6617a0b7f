"""The engine: jobs in, events out. :class:`Engine` is the one API the cogs and the CLI use.

- :mod:`.engine` — :class:`Engine`: admit, store, queue, follow, cancel, look up, record delivery, status.
- :mod:`.events` — what happens to a job (``Queued`` … ``Done``) and the :class:`JobHandle` carrying it.
- :mod:`.backend` — the :class:`Backend` interface and the queue every backend shares.
- :mod:`.local` — :class:`LocalBackend`: one worker thread per device in this process.
- :mod:`.fairqueue` — the round-robin queue (one job per member per turn).
- :mod:`.store` — jobs and tiles in SQLite.
- :mod:`.models` — the configured models with their families and presets (:class:`Catalogue`).
"""

from bot.engine.backend import (
    UNKNOWN_MODEL,
    Backend,
    BackendClosedError,
    ModelInfo,
    PromptReader,
    QueueFullError,
    WorkerInfo,
)
from bot.engine.engine import Engine, EngineStatus, JobListener, QueueListing, Quota
from bot.engine.events import (
    TERMINAL,
    Cancelled,
    Done,
    Event,
    Failed,
    Interrupted,
    JobHandle,
    Loading,
    Preview,
    Progress,
    Queued,
    Started,
    StopReason,
    Terminal,
)
from bot.engine.local import LocalBackend
from bot.engine.models import Catalogue, ModelPreset

__all__ = [
    "TERMINAL",
    "UNKNOWN_MODEL",
    "Backend",
    "BackendClosedError",
    "Cancelled",
    "Catalogue",
    "Done",
    "Engine",
    "EngineStatus",
    "Event",
    "Failed",
    "Interrupted",
    "JobHandle",
    "JobListener",
    "Loading",
    "LocalBackend",
    "ModelInfo",
    "ModelPreset",
    "Preview",
    "Progress",
    "PromptReader",
    "QueueFullError",
    "QueueListing",
    "Queued",
    "Quota",
    "Started",
    "StopReason",
    "Terminal",
    "WorkerInfo",
]
