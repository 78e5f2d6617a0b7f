"""The metrics of one process: a registry of its own, the instruments, and small typed recording methods.

One :class:`Metrics` per process (the bot, or a worker), owned by whoever composes it and passed to what
records into it; nothing here is module-level state, so a test can run several bots in one process. It
is the core's :class:`~bot.monitoring.observer.Observer` (jobs, model loads, OOM splits, claims, dead
letters) and has the Discord side's recording methods too (``cogs/monitoring.py`` calls them).

Labels never carry a prompt, a member, a channel or any other id: only kinds, outcomes, reasons, the
configured model names, devices, HTTP statuses and Discord's rate-limit bucket hashes, and every label
whose values come from outside the code is capped (:class:`BoundedLabel`), so the number of series stays
bounded whatever happens.

What is only known at scrape time (queue depth, live workers, loaded models, GPU memory) is read then:
:meth:`Metrics.watch` registers a :class:`Snapshot` source that runs on the event loop through a
:class:`~bot.monitoring.probe.LoopProbe`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.engine.events import Cancelled, Done, Failed, Interrupted, Preview, Progress, Queued, Started

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.engine.events import Event
    from bot.jobs import Job, JobRequest
    from bot.monitoring.probe import LoopProbe

log = logging.getLogger(__name__)

LABEL_LIMIT = 32
"""Distinct values a label fed from outside the code may take; later new values are recorded as ``other``."""
OTHER = "other"

REFUSAL_REASONS = frozenset({"restarting", "paused", "member_limit", "queue_full", "blocklist", "rate"})
"""Why a job is refused, as the keys of the texts members get (``refused.<reason>``)."""
DEAD_LETTER_REASONS = frozenset({"deliveries", "unreadable"})
INTERACTION_TYPES = frozenset({"ping", "application_command", "component", "autocomplete", "modal_submit"})

WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
RUN_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)
LOAD_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)


class BoundedLabel:
    """Keeps a label's values to a known set, or to the first ``limit`` distinct ones; the rest are ``other``."""

    def __init__(self, *, allowed: Iterable[str] | None = None, limit: int = LABEL_LIMIT) -> None:
        self._allowed = None if allowed is None else frozenset(allowed)
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


def model_label(model_id: str) -> str:
    """A model as labels show it: a Hub id as is, a local folder by its name only (a path may name a person)."""
    path = Path(model_id)
    if path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") > 1:
        return path.name or OTHER
    return model_id


def version() -> str:
    try:
        return metadata.version("seedgrid")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a process holds right now, read on its event loop when Prometheus scrapes."""

    waiting: int = 0
    running: int = 0
    members_waiting: int = 0
    paused: bool = False
    deliveries_pending: int | None = None
    """Finished jobs whose outcome is being posted (the bot only)."""
    workers: int | None = None
    """Live workers (the bot on the redis backend); None where jobs run in this process."""
    models: tuple[tuple[str, str], ...] = ()
    """``(device, model name)`` of every loaded model: this process's devices, or the live workers'."""


SnapshotSource = Callable[[], Awaitable[Snapshot]]


@dataclass(slots=True)
class _Timing:
    queued: float | None = None
    started: float | None = None


@dataclass(slots=True)
class _Labels:
    model: BoundedLabel = field(default_factory=BoundedLabel)
    device: BoundedLabel = field(default_factory=BoundedLabel)
    status: BoundedLabel = field(default_factory=BoundedLabel)
    bucket: BoundedLabel = field(default_factory=lambda: BoundedLabel(limit=64))
    scope: BoundedLabel = field(default_factory=lambda: BoundedLabel(allowed=("user", "global", "shared", "unknown")))
    reason: BoundedLabel = field(default_factory=lambda: BoundedLabel(allowed=REFUSAL_REASONS))
    dead: BoundedLabel = field(default_factory=lambda: BoundedLabel(allowed=DEAD_LETTER_REASONS))
    interaction: BoundedLabel = field(default_factory=lambda: BoundedLabel(allowed=INTERACTION_TYPES))


class Metrics:
    """The registry and instruments of one process (``role``: ``bot`` or ``worker``).

    ``models``: the configured models as ``(name, id)``, the default first (``Settings.model_entries``).
    Their names are the only values of the ``model`` label (a job whose request names no model counts
    as the default's); their ids go in ``seedgrid_build_info``. ``process``: add the standard
    ``process_*`` metrics (CPU, memory, open files).
    """

    def __init__(
        self,
        *,
        role: str = "bot",
        backend: str = "local",
        models: Sequence[tuple[str, str]] = (),
        clock: Callable[[], float] = time.monotonic,
        process: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        self.default_model = models[0][0] if models else "default"
        self._clock = clock
        self._started = clock()
        self._labels = _Labels()
        if models:
            self._labels.model = BoundedLabel(allowed=[name for name, _ in models])
        self._timing: dict[int, _Timing] = {}
        r = self.registry
        job = ("kind", "model")

        # jobs
        self.jobs_submitted = Counter("seedgrid_jobs_submitted", "Jobs admitted and stored.", job, registry=r)
        self.jobs_refused = Counter(
            "seedgrid_jobs_refused", "Jobs refused before anything was stored, by reason.", (*job, "reason"), registry=r
        )
        self.jobs_finished = Counter(
            "seedgrid_jobs_finished",
            "Jobs ended: done, failed, cancelled, or interrupted by a shutdown (they run again at the next start).",
            (*job, "outcome"),
            registry=r,
        )
        self.wait_seconds = Histogram(
            "seedgrid_job_wait_seconds", "From queued to running.", job, buckets=WAIT_BUCKETS, registry=r
        )
        self.run_seconds = Histogram(
            "seedgrid_job_run_seconds", "From running to done (jobs that gave a grid).", job, buckets=RUN_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "seedgrid_step_seconds",
            "Seconds per denoising step of each finished job (the pipeline's time over its steps).",
            ("model",),
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.previews = Counter("seedgrid_previews", "Live previews drawn.", ("model",), registry=r)

        # Discord
        self.interactions = Counter(
            "seedgrid_discord_interactions", "Interactions received, by type.", ("type",), registry=r
        )
        self.ack_seconds = Histogram(
            "seedgrid_discord_ack_seconds",
            "From an interaction's arrival to Discord's answer to its first response.",
            ("type",),
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.http_errors = Counter(
            "seedgrid_discord_http_errors",
            "Discord REST answers of 400 and more (0: no answer: the connection failed), by status.",
            ("status",),
            registry=r,
        )
        self.rate_limits = Counter(
            "seedgrid_discord_rate_limits", "429 answers, by rate-limit bucket and scope.", ("bucket", "scope"),
            registry=r,
        )  # fmt: skip
        self.reconnects = Counter(
            "seedgrid_discord_gateway_reconnects",
            "Gateway sessions resumed (resume) or started anew (identify) after the first.",
            ("how",),
            registry=r,
        )
        self.progress_edits = Counter(
            "seedgrid_discord_progress_edits", "Status and progress edits of job messages.", ("preview",), registry=r
        )
        self.expired_token_deliveries = Counter(
            "seedgrid_discord_expired_token_deliveries",
            "Jobs whose message went on as a channel message because the 15-minute interaction token expired.",
            registry=r,
        )

        # devices and workers
        self.model_load_seconds = Histogram(
            "seedgrid_model_load_seconds", "Model loads (at start-up, and on demand) and how long they took.",
            ("device", "model"), buckets=LOAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.oom_splits = Counter(
            "seedgrid_oom_splits", "Batches split in two after running out of device memory.", ("device",), registry=r
        )
        self.claims = Counter(
            "seedgrid_worker_claims", "Jobs this worker took over from a worker that stopped.", registry=r
        )
        self.dead_letters = Counter(
            "seedgrid_worker_dead_letters", "Jobs set aside in the dead-letter stream, by reason.", ("reason",),
            registry=r,
        )  # fmt: skip

        # process
        uptime = Gauge("seedgrid_uptime_seconds", "Seconds since this process started recording.", registry=r)
        uptime.set_function(lambda: self._clock() - self._started)
        build = Gauge(
            "seedgrid_build_info", "Version, role, backend and the configured models (one series per model).",
            ("version", "role", "backend", "model", "model_id"), registry=r,
        )  # fmt: skip
        build_version = version()
        for name, model_id in models or (("", ""),):
            build.labels(build_version, role, backend, name, model_label(model_id) if model_id else "").set(1)
        r.register(_CudaMemory())
        if process:
            ProcessCollector(registry=r)

    @classmethod
    def for_settings(cls, settings: Settings, *, role: str) -> Metrics:
        """The metrics of the bot (``role="bot"``) or a worker (``"worker"``) that runs with ``settings``."""
        models = [(entry.name, entry.id) for entry in settings.model_entries]
        return cls(role=role, backend=settings.executor.backend, models=models)

    # --- scrape time ---

    def watch(self, probe: LoopProbe, source: SnapshotSource, *, timeout: float) -> None:
        """Read ``source()`` on the event loop at every scrape (the loop's lag and responsiveness too)."""
        self.registry.register(_LoopCollector(probe, source, timeout, self._labels))

    # --- the core's hooks (bot.monitoring.observer.Observer) ---

    def job_submitted(self, request: JobRequest) -> None:
        self.jobs_submitted.labels(request.kind.value, self._model(request)).inc()

    def job_refused(self, request: JobRequest, reason: str) -> None:
        reason = self._labels.reason(reason.removeprefix("refused."))
        self.jobs_refused.labels(request.kind.value, self._model(request), reason).inc()

    def job_event(self, job: Job, event: Event) -> None:
        if isinstance(event, Progress):  # most events: nothing to record (steps are timed per job)
            return
        if isinstance(event, Queued):
            if job.id not in self._timing:  # the first position: the wait starts (a later Queued is a move)
                self._timing[job.id] = _Timing(queued=self._clock())
        elif isinstance(event, Started):
            self._started_job(job)
        elif isinstance(event, Preview):
            self.previews.labels(self._model(job.request)).inc()
        elif isinstance(event, _ENDED):
            self._ended(job, event)

    def model_loaded(self, device: str, model: str, seconds: float) -> None:
        self.model_load_seconds.labels(self._labels.device(device), self._labels.model(model)).observe(seconds)

    def oom_split(self, device: str) -> None:
        self.oom_splits.labels(self._labels.device(device)).inc()

    def job_claimed(self) -> None:
        self.claims.inc()

    def dead_lettered(self, reason: str) -> None:
        self.dead_letters.labels(self._labels.dead(reason)).inc()

    # --- the Discord side's (cogs/monitoring.py) ---

    def interaction(self, kind: str) -> None:
        self.interactions.labels(self._labels.interaction(kind)).inc()

    def acknowledged(self, kind: str, seconds: float) -> None:
        self.ack_seconds.labels(self._labels.interaction(kind)).observe(seconds)

    def http_error(self, status: int) -> None:
        self.http_errors.labels(self._labels.status(str(status))).inc()

    def rate_limited(self, bucket: str, scope: str) -> None:
        self.rate_limits.labels(self._labels.bucket(bucket), self._labels.scope(scope)).inc()

    def gateway_reconnect(self, how: str) -> None:
        self.reconnects.labels("resume" if how == "resume" else "identify").inc()

    def progress_edit(self, *, preview: bool) -> None:
        self.progress_edits.labels("yes" if preview else "no").inc()

    def token_expired_delivery(self) -> None:
        self.expired_token_deliveries.inc()

    # --- helpers ---

    def _model(self, request: JobRequest) -> str:
        return self._labels.model(request.model or self.default_model)

    def _started_job(self, job: Job) -> None:
        now = self._clock()
        timing = self._timing.setdefault(job.id, _Timing())
        if timing.queued is not None and timing.started is None:
            self.wait_seconds.labels(job.request.kind.value, self._model(job.request)).observe(now - timing.queued)
        timing.started = now

    def _ended(self, job: Job, event: Done | Failed | Cancelled | Interrupted) -> None:
        timing = self._timing.pop(job.id, None)
        kind, model = job.request.kind.value, self._model(job.request)
        self.jobs_finished.labels(kind, model, _OUTCOMES[type(event)]).inc()
        if isinstance(event, Done):
            if timing is not None and timing.started is not None:
                self.run_seconds.labels(kind, model).observe(self._clock() - timing.started)
            steps = max(1, job.request.steps)
            self.step_seconds.labels(model).observe(event.result.elapsed / steps)


_OUTCOMES: dict[type, str] = {Done: "done", Failed: "failed", Cancelled: "cancelled", Interrupted: "interrupted"}
_ENDED = (Done, Failed, Cancelled, Interrupted)


def _gauge(name: str, documentation: str, value: float | None = None, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    if labels:
        return GaugeMetricFamily(name, documentation, labels=labels)
    return GaugeMetricFamily(name, documentation, value=value)


class _LoopCollector(Collector):
    """Scrape-time gauges read on the event loop; when the loop does not answer in time, only that is said."""

    def __init__(self, probe: LoopProbe, source: SnapshotSource, timeout: float, labels: _Labels) -> None:
        self._probe = probe
        self._source = source
        self._timeout = timeout
        self._labels = labels

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the names are known; collect() must not run at registration (it waits on the loop)

    def collect(self) -> Iterator[Metric]:
        lag = self._probe.ping(self._timeout)
        yield _gauge(
            "seedgrid_event_loop_responsive",
            f"1 when the event loop ran a callback within {self._timeout:g} s of being asked at this scrape.",
            0.0 if lag is None else 1.0,
        )
        if lag is None:
            return
        yield _gauge("seedgrid_event_loop_lag_seconds", "How long the event loop took to run a callback.", lag)
        try:
            snap = self._probe.run(self._source, self._timeout)
        except Exception as exc:
            log.warning("metrics: could not read the queue and devices at this scrape: %r", exc)
            return
        yield from self._families(snap)

    def _families(self, snap: Snapshot) -> Iterator[Metric]:
        jobs = _gauge("seedgrid_queue_jobs", "Jobs waiting in the queue and running.", labels=("state",))
        jobs.add_metric(["waiting"], snap.waiting)
        jobs.add_metric(["running"], snap.running)
        yield jobs
        yield _gauge("seedgrid_queue_members_waiting", "Members with at least one job waiting.", snap.members_waiting)
        yield _gauge("seedgrid_queue_paused", "1 while an admin has paused the queue.", float(snap.paused))
        if snap.deliveries_pending is not None:
            yield _gauge(
                "seedgrid_deliveries_pending",
                "Finished jobs whose outcome is being posted (or retried while Discord has trouble).",
                snap.deliveries_pending,
            )
        if snap.workers is not None:
            yield _gauge("seedgrid_workers_live", "Workers with a heartbeat within redis.claim_idle.", snap.workers)
        loaded = _gauge(
            "seedgrid_models_loaded", "Models loaded per device (this process's, or the live workers').",
            labels=("device", "model"),
        )  # fmt: skip
        counts: dict[tuple[str, str], int] = {}
        for device, model in snap.models:
            key = (self._labels.device(device), self._labels.model(model))
            counts[key] = counts.get(key, 0) + 1
        for (device, model), count in sorted(counts.items()):
            loaded.add_metric([device, model], count)
        yield loaded


class _CudaMemory(Collector):
    """GPU memory of this process, read at scrape time, once torch has initialised CUDA (never imports torch)."""

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        torch = sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None)
        if cuda is None or not cuda.is_initialized():
            return
        allocated = _gauge(
            "seedgrid_gpu_memory_allocated_bytes", "GPU memory held by tensors (torch.cuda.memory_allocated).",
            labels=("device",),
        )  # fmt: skip
        reserved = _gauge(
            "seedgrid_gpu_memory_reserved_bytes", "GPU memory held by torch's caching allocator (memory_reserved).",
            labels=("device",),
        )  # fmt: skip
        for index in range(cuda.device_count()):
            allocated.add_metric([f"cuda:{index}"], cuda.memory_allocated(index))
            reserved.add_metric([f"cuda:{index}"], cuda.memory_reserved(index))
        yield allocated
        yield reserved
