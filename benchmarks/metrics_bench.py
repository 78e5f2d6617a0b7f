"""Figure 9: what recording Prometheus metrics costs per job, measured with metrics on and off in one run.

(a) **The engine's path.** Two in-process engines, identical but for the observer (``Engine(...,
observer=Metrics(...))`` against ``observer=None``), each with a real store (SQLite in a temporary folder),
the real ``LocalBackend`` and a stand-in renderer that takes no time but reports what a real job reports
(``steps`` progress events and a preview every ``preview_every`` steps), so that the per-job cost of the
bot itself, not of a pipeline, is what is timed. Jobs run one at a time, from ``Engine.submit`` to the
end of the job's follower (its outcome recorded); the two engines alternate in blocks, and the figure
is the difference of the medians (the mean of the paired block differences is in the JSON).
(b) **The recording calls alone**: one job's worth of ``Metrics`` calls (submitted, every event of the
job above, the interaction, its acknowledgement and three progress edits), timed over many jobs.
(c) **A scrape**: ``GET /metrics`` over HTTP against the engine that recorded, median of several.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Row, Section, median, ms, settings_text


@dataclass(frozen=True)
class Plan:
    jobs: int = 600
    """Jobs per engine."""
    block: int = 50
    steps: int = 30
    preview_every: int = 5
    direct_jobs: int = 20_000
    scrapes: int = 30


QUICK = Plan(jobs=150, block=25, direct_jobs=5_000, scrapes=10)


class InstantRenderer:
    """Reports a job's steps and previews as the real renderer does, in no time."""

    def __init__(self, preview_every: int) -> None:
        self.preview_every = preview_every
        self.preview = bytes(2000)

    @property
    def info(self) -> Any:
        from bot.engine import ModelInfo

        return ModelInfo(model="model", device="cpu", dtype="float32", scheduler="PNDM", loaded=("model",))

    def render(
        self,
        job: Any,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        on_preview: Callable[[int, bytes], None] | None = None,
        on_load: Any = None,
    ) -> Any:
        from bot.jobs import JobResult

        steps = job.request.steps
        for step in range(1, steps + 1):
            on_step(step, steps)
            if on_preview is not None and step % self.preview_every == 0:
                on_preview(step, self.preview)
        return JobResult(job.id, job.tiles, b"grid", (), elapsed=0.001)  # type: ignore[arg-type]


def _request(steps: int, user: int) -> Any:
    from bot.jobs import JobKind, JobRequest

    return JobRequest(
        kind=JobKind.IMAGINE, prompt="a lighthouse at dusk", negative="", seed=1, steps=steps, guidance=7.5,
        width=64, height=64, user_id=user,
    )  # fmt: skip


async def _engine(model: Path, folder: Path, name: str, plan: Plan, metrics: Any) -> Any:
    from bot.config import ExecutorSettings, parse_settings
    from bot.engine import Engine, LocalBackend
    from bot.engine.models import Catalogue
    from bot.engine.store import Store

    settings = parse_settings(settings_text(model, folder / f"{name}.db"))
    renderer = InstantRenderer(plan.preview_every)
    backend = LocalBackend({"cpu": lambda: renderer}, ExecutorSettings(per_user_limit=100, queue_limit=1000))
    await backend.start()
    catalogue = await asyncio.to_thread(Catalogue.resolve, settings)
    return Engine(await Store.open(folder / f"{name}.db"), backend, catalogue, observer=metrics)


async def _one_job(engine: Any, plan: Plan, user: int) -> float:
    started = time.perf_counter()
    handle = await engine.submit(_request(plan.steps, user))
    await handle.wait()
    await engine.drain()  # the follower has recorded the outcome (and told the observer)
    return time.perf_counter() - started


def _direct(plan: Plan) -> float:
    """Seconds of ``Metrics`` calls for one job: its admission, its events, its Discord side."""
    from bot.engine import Done, Preview, Progress, Queued, Started
    from bot.jobs import Job, JobResult
    from bot.monitoring.metrics import Metrics

    metrics = Metrics(models=[("model", "model")], process=False)
    request = _request(plan.steps, 1)
    result = JobResult(1, request.tiles(), b"grid", (), elapsed=0.5)  # type: ignore[arg-type]
    events: list[Any] = [Queued(2), Queued(1), Started()]
    for step in range(1, plan.steps + 1):
        events.append(Progress(step, plan.steps, step * 0.01))
        if step % plan.preview_every == 0:
            events.append(Preview(step, b""))
    events.append(Done(result))
    jobs = [Job(i, request) for i in range(plan.direct_jobs)]
    started = time.perf_counter()
    for job in jobs:
        metrics.job_submitted(request)
        for event in events:
            metrics.job_event(job, event)
        metrics.interaction("application_command")
        metrics.acknowledged("application_command", 0.004)
        for _ in range(3):
            metrics.progress_edit(preview=True)
    return (time.perf_counter() - started) / plan.direct_jobs


async def _scrapes(engine: Any, metrics: Any, plan: Plan) -> tuple[list[float], int]:
    import aiohttp

    from bot.config import MetricsSettings
    from bot.monitoring.health import engine_readiness, engine_snapshot, serve

    server = serve(
        "127.0.0.1:0",
        metrics,
        MetricsSettings(),
        readiness=lambda: engine_readiness(engine),
        snapshot=lambda: engine_snapshot(engine),
    )
    times: list[float] = []
    size = 0
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(plan.scrapes):
                started = time.perf_counter()
                async with session.get(f"{server.url}/metrics") as response:
                    body = await response.read()
                times.append(time.perf_counter() - started)
                size = len(body)
    finally:
        await asyncio.to_thread(server.stop)
    return times, size


async def run(model: Path, workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    from bot.monitoring.metrics import Metrics

    section = Section("metrics")
    log(f"metrics: {plan.jobs} jobs ({plan.steps} steps) through an engine with metrics on, and one with them off")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        metrics = Metrics(models=[("model", str(model))])
        engines = {
            "on": await _engine(model, folder, "on", plan, metrics),
            "off": await _engine(model, folder, "off", plan, None),
            "off2": await _engine(model, folder, "off2", plan, None),  # the A/A control: the noise floor
        }
        try:
            for engine in engines.values():  # warm-up: the store's first writes, the first hops
                for _ in range(10):
                    await _one_job(engine, plan, 1)
            times: dict[str, list[float]] = {side: [] for side in engines}
            block_diffs: list[float] = []
            sides = list(engines)
            for block in range(plan.jobs // plan.block):
                order = sides[block % 3 :] + sides[: block % 3]
                medians = {}
                for side in order:
                    batch = [await _one_job(engines[side], plan, 2 + i % 5) for i in range(plan.block)]
                    times[side] += batch
                    medians[side] = median(batch)
                block_diffs.append(medians["on"] - medians["off"])
            scrape_times, scrape_bytes = await _scrapes(engines["on"], metrics, plan)
        finally:
            for engine in engines.values():
                await engine.close(grace=0)
    direct = await asyncio.to_thread(_direct, plan)

    on, off, control = median(times["on"]), median(times["off"]), median(times["off2"])
    diff = on - off
    section.figures = {
        "plan": plan.__dict__,
        "per_job_on_s": times["on"],
        "per_job_off_s": times["off"],
        "median_on_s": on,
        "median_off_s": off,
        "difference_of_medians_s": diff,
        "per_job_off2_s": times["off2"],
        "control_difference_s": control - off,
        "mean_of_block_differences_s": statistics.fmean(block_diffs),
        "block_differences_s": block_diffs,
        "direct_per_job_s": direct,
        "scrape_s": scrape_times,
        "scrape_bytes": scrape_bytes,
    }
    section.rows += [
        Row(
            "9 metrics",
            f"per job through the engine ({plan.steps} steps), metrics on − off (median of {len(times['on'])})",
            _us(diff),
            f"off {ms(off)}, on {ms(on)}",
        ),
        Row("9 metrics", "  mean of the paired block differences", _us(statistics.fmean(block_diffs))),
        Row("9 metrics", "  control: two engines, both off (the noise floor)", _us(control - off)),
        Row("9 metrics", "  the recording calls alone, per job", _us(direct)),
        Row("9 metrics", f"GET /metrics over HTTP (median of {len(scrape_times)})", ms(median(scrape_times)),
            f"{scrape_bytes / 1024:.1f} KiB"),
    ]  # fmt: skip
    section.notes.append(
        f"metrics (9): per-job cost of recording metrics = the difference of the median job time through two "
        f"in-process engines, one with a Metrics observer and one without (real store and LocalBackend, a "
        f"stand-in renderer reporting {plan.steps} steps and a preview every {plan.preview_every}, no pipeline), "
        f"taking turns in blocks of {plan.block} with a third engine, also without metrics, whose difference from the "
        f"second is the noise floor; 'the recording calls alone' times one job's Metrics calls "
        f"(admission, every event, the interaction, its ack, 3 progress edits) over {plan.direct_jobs} jobs; "
        "the scrape is GET /metrics over HTTP on the engine that recorded (the queue read on its loop)."
    )
    return section


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"
