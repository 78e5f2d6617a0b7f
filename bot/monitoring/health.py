"""What ``/readyz`` checks and what the scrape-time gauges read, for the bot's engine and for a worker.

All of it runs on the event loop (the endpoint's thread asks for it through a :class:`LoopProbe`), so it
may read the engine and the backend as their own code does. The bot adds its gateway check on the
Discord side (``cogs/monitoring.py``); ``bot/`` knows nothing of Discord.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bot.monitoring.metrics import Snapshot

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from bot.config import MetricsSettings
    from bot.engine import Engine, LocalBackend, ModelInfo
    from bot.monitoring.http import MonitoringServer, Readiness
    from bot.monitoring.metrics import Metrics, SnapshotSource

log = logging.getLogger(__name__)

REDIS_PING_TIMEOUT = 2.0


def _loaded(info: ModelInfo) -> Iterable[tuple[str, str]]:
    """``(device, model name)`` for each model a device or worker holds loaded."""
    return ((info.device, name) for name in info.loaded or (info.model,))


async def engine_snapshot(engine: Engine) -> Snapshot:
    """The bot's queue, deliveries, live workers (redis backend) and loaded models, now."""
    status = await engine.status(since=None)
    waiting = engine.queue().waiting
    if status.workers is not None:
        models = [pair for worker in status.workers for pair in _loaded(worker.model)]
    else:
        models = list(_loaded(status.model)) if status.model is not None else []
    return Snapshot(
        waiting=status.waiting,
        running=status.running,
        members_waiting=len({job.request.user_id for job in waiting}),
        paused=status.paused,
        deliveries_pending=status.waiting_for_delivery,
        workers=None if status.workers is None else len(status.workers),
        models=tuple(models),
    )


async def engine_readiness(engine: Engine | None) -> dict[str, bool]:
    """The engine's part of the bot's readiness: a model loaded (or a worker alive) and the store writable."""
    if engine is None:  # still opening: loading the model, or connecting to Redis
        return {"model": False, "store": False}
    return {"model": engine.info is not None, "store": await engine.store_writable()}


def backend_snapshot(backend: LocalBackend) -> SnapshotSource:
    """A worker's queue (its one running job) and its loaded models, as a snapshot source."""

    async def snapshot() -> Snapshot:
        info = backend.info
        return Snapshot(
            waiting=backend.queue_depth,
            running=len(backend.running),
            members_waiting=len({job.request.user_id for job in backend.waiting}),
            paused=backend.paused,
            models=tuple(_loaded(info)) if info is not None else (),
        )

    return snapshot


def worker_readiness(backend: LocalBackend, client: aioredis.Redis) -> Readiness:
    """A worker is ready when its model is loaded and Redis answers."""

    async def readiness() -> dict[str, bool]:
        try:
            async with asyncio.timeout(REDIS_PING_TIMEOUT):
                redis_ok = bool(await client.ping())
        except Exception as exc:
            log.warning("/readyz: Redis does not answer: %r", exc)
            redis_ok = False
        return {"model": backend.info is not None, "redis": redis_ok}

    return readiness


def serve(
    listen: str,
    metrics: Metrics,
    settings: MetricsSettings,
    *,
    readiness: Readiness,
    snapshot: SnapshotSource,
) -> MonitoringServer:
    """Start the endpoint of this process on ``listen`` (call it on the event loop it watches).

    Raises :class:`~bot.monitoring.http.MonitoringError` when the address cannot be had.
    """
    from bot.monitoring.http import MonitoringServer
    from bot.monitoring.probe import LoopProbe

    probe = LoopProbe(asyncio.get_running_loop())
    metrics.watch(probe, snapshot, timeout=settings.health_timeout)
    server = MonitoringServer(listen, metrics, probe, readiness=readiness, health_timeout=settings.health_timeout)
    server.start()
    return server


def serve_worker(
    listen: str, metrics: Metrics, settings: MetricsSettings, backend: LocalBackend, client: aioredis.Redis
) -> MonitoringServer:
    """A worker's endpoint: its metrics, alive while its loop answers, ready once its model is loaded and
    Redis answers."""
    return serve(
        listen, metrics, settings, readiness=worker_readiness(backend, client), snapshot=backend_snapshot(backend)
    )
