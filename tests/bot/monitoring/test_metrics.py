"""The metrics (``bot/monitoring/metrics.py``) move exactly with what happens to jobs, through the real
``Engine`` and ``LocalBackend`` (a stand-in renderer whose jobs the test releases), scraped over HTTP; the
renderer's out-of-memory splits and model loads; and no label ever carries a prompt or a member id."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from bot.config import ExecutorSettings, MetricsSettings, ModelSettings, Settings
from bot.diffusion.pipeline import Pipeline
from bot.diffusion.renderer import PipelineRenderer
from bot.diffusion.shelf import Shelf
from bot.engine import (
    BackendClosedError,
    Cancelled,
    Done,
    Engine,
    Failed,
    Interrupted,
    LocalBackend,
    ModelInfo,
    Preview,
    Progress,
    Queued,
    QueueFullError,
    Started,
)
from bot.engine.models import Catalogue
from bot.engine.store import Store
from bot.jobs import Job, JobKind, JobRequest, JobResult, RenderCancelled
from bot.monitoring.health import engine_readiness, engine_snapshot, serve
from bot.monitoring.metrics import OTHER, BoundedLabel, Metrics, model_label
from bot.texts import Text
from tests.metrics_probe import Scrape, scrape

MODELS = [("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5"), ("turbo", "stabilityai/sdxl-turbo")]


def a_request(user: int, *, prompt: str = "a lighthouse", steps: int = 2, model: str = "") -> JobRequest:
    return JobRequest(
        kind=JobKind.IMAGINE, prompt=prompt, negative="", seed=1, steps=steps, guidance=7.5, width=64, height=64,
        user_id=user, model=model,
    )  # fmt: skip


class HeldRenderer:
    """Renders in no time, one preview a job, but only once the test lets each job through."""

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(model="sd15", device="cpu", dtype="float32", scheduler="PNDM", loaded=("sd15",))

    def render(
        self,
        job: Job,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        on_preview: Callable[[int, bytes], None] | None = None,
        on_load: Any = None,
    ) -> JobResult:
        while not self.gate.acquire(timeout=0.02):
            if should_stop():
                raise RenderCancelled
        for step in range(1, job.request.steps + 1):
            on_step(step, job.request.steps)
        if on_preview is not None:
            on_preview(1, b"preview")
        return JobResult(job.id, job.tiles, b"grid", (b"1", b"2", b"3", b"4"), elapsed=0.01 * job.request.steps)  # type: ignore[arg-type]


@pytest.fixture
async def watched(settings: Settings) -> AsyncIterator[tuple[Engine, HeldRenderer, Metrics, str]]:
    renderer = HeldRenderer()
    backend = LocalBackend({"cpu": lambda: renderer}, ExecutorSettings(per_user_limit=3, queue_limit=10))
    await backend.start()
    metrics = Metrics(models=MODELS)
    engine = Engine(await Store.open(":memory:"), backend, Catalogue.resolve(settings), observer=metrics)
    server = serve(
        "127.0.0.1:0",
        metrics,
        MetricsSettings(),
        readiness=lambda: engine_readiness(engine),
        snapshot=lambda: engine_snapshot(engine),
    )
    yield engine, renderer, metrics, server.url
    renderer.gate.release(100)
    await engine.close(grace=0)
    await asyncio.to_thread(server.stop)


async def test_counters_and_histograms_move_exactly_with_the_jobs(
    watched: tuple[Engine, HeldRenderer, Metrics, str],
) -> None:
    engine, renderer, _, url = watched
    first = await engine.submit(a_request(1))  # held: it runs, and what follows queues behind it
    await first.started.wait()
    queued = [await engine.submit(r) for r in (a_request(1, model="turbo"), a_request(1), a_request(2))]
    with pytest.raises(QueueFullError):
        await engine.submit(a_request(1))  # member 1 has 3 jobs: the member limit
    engine.pause()
    with pytest.raises(QueueFullError):
        await engine.submit(a_request(3))
    engine.resume()

    during = await scrape(url)
    assert during.value("seedgrid_queue_jobs", state="running") == 1
    assert during.value("seedgrid_queue_jobs", state="waiting") == 3
    assert during.value("seedgrid_queue_members_waiting") == 2
    assert during.value("seedgrid_models_loaded", device="cpu", model="sd15") == 1
    assert during.value("seedgrid_deliveries_pending") == 0

    assert engine.cancel(queued[1].job.id)  # a queued job, cancelled
    renderer.gate.release(3)
    for handle in (first, *queued):
        await handle.wait()
    more = [await engine.submit(a_request(4, steps=4)) for _ in range(3)]
    renderer.gate.release(3)
    for handle in more:
        assert isinstance(await handle.wait(), Done)
    await engine.drain()

    after = await scrape(url)
    done, submitted = 6, 7
    assert after.value("seedgrid_jobs_submitted_total") == submitted
    assert after.value("seedgrid_jobs_submitted_total", kind="imagine", model="turbo") == 1
    assert after.value("seedgrid_jobs_submitted_total", model="sd15") == submitted - 1  # "" counts as the default
    assert after.value("seedgrid_jobs_finished_total", outcome="done") == done
    assert after.value("seedgrid_jobs_finished_total", outcome="cancelled") == 1
    assert after.value("seedgrid_jobs_refused_total", reason="member_limit") == 1
    assert after.value("seedgrid_jobs_refused_total", reason="paused") == 1
    assert after.value("seedgrid_job_wait_seconds_count") == done  # the cancelled job never started
    assert after.value("seedgrid_job_run_seconds_count") == done
    assert after.value("seedgrid_step_seconds_count", model="sd15") == done - 1
    assert after.value("seedgrid_step_seconds_sum") == pytest.approx(done * 0.01)  # elapsed / steps, each 0.01
    assert after.value("seedgrid_previews_total") == done
    assert after.value("seedgrid_queue_jobs") == 0


async def test_a_closing_engine_counts_refusals_and_interruptions(
    watched: tuple[Engine, HeldRenderer, Metrics, str],
) -> None:
    engine, _, _, url = watched
    running = await engine.submit(a_request(1))
    await running.started.wait()
    waiting = await engine.submit(a_request(2))
    await engine.stop(grace=0)
    assert isinstance(await waiting.wait(), Interrupted)
    with pytest.raises(BackendClosedError):
        await engine.submit(a_request(3))
    await engine.drain()
    seen = await scrape(url)
    assert seen.value("seedgrid_jobs_finished_total", outcome="interrupted") == 2
    assert seen.value("seedgrid_jobs_refused_total", reason="restarting") == 1
    assert seen.value("seedgrid_job_run_seconds_count") == 0


async def test_readiness_of_the_engine(watched: tuple[Engine, HeldRenderer, Metrics, str]) -> None:
    engine, *_ = watched
    assert await engine_readiness(engine) == {"model": True, "store": True}
    assert await engine_readiness(None) == {"model": False, "store": False}


# --- the renderer: out-of-memory splits and model loads -------------------------------------------


class OutOfMemoryOverTwo:
    """The real pipeline on a pretend GPU that has room for two tiles at a time."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @property
    def info(self) -> ModelInfo:
        return self.pipeline.info

    @property
    def weight_bytes(self) -> int:
        return 0

    def generate(self, params: Any, **options: Any) -> Any:
        if len(params.tiles) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return self.pipeline.generate(params, **options)


def test_the_renderer_reports_model_loads_and_oom_splits(tiny_model: Path) -> None:
    metrics = Metrics(models=[("tiny", str(tiny_model))], process=False)
    loaded = PipelineRenderer.load({"tiny": ModelSettings(id=str(tiny_model), device="cpu")}, observer=metrics)
    assert metrics.model_load_seconds.labels("cpu", "tiny")._sum.get() > 0  # type: ignore[attr-defined]
    gpu = OutOfMemoryOverTwo(loaded.shelf.get("tiny"))
    renderer = PipelineRenderer(Shelf.holding(gpu), observer=metrics)  # type: ignore[arg-type]
    request = replace(a_request(1), steps=1)
    renderer.render(Job(1, request), lambda *_: None, lambda: False)
    seen = Scrape(generate_latest(metrics.registry).decode())
    assert seen.value("seedgrid_oom_splits_total", device="cpu") == 1  # 4 → 2 + 2
    assert seen.value("seedgrid_model_load_seconds_count", device="cpu", model="tiny") == 1


# --- labels ---------------------------------------------------------------------------------------


def test_bounded_labels_and_model_names() -> None:
    capped = BoundedLabel(limit=2)
    assert [capped(v) for v in ("a", "b", "c", "a")] == ["a", "b", OTHER, "a"]
    assert BoundedLabel(allowed=["x"])("y") == OTHER
    assert model_label("stabilityai/sdxl-turbo") == "stabilityai/sdxl-turbo"
    assert model_label("/home/alice/models/my-sd15") == "my-sd15"  # a folder: its name, not its path
    assert model_label("./models/sd") == "sd"


VOCABULARY = {
    "imagine", "refine", "sd15", "turbo", OTHER, "done", "failed", "cancelled", "interrupted", "member_limit",
    "queue_full", "paused", "restarting", "blocklist", "rate", "cpu", "cuda:0", "yes", "no", "resume",
    "identify", "application_command", "component", "modal_submit", "autocomplete", "ping", "user", "global",
    "unknown", "deliveries", "unreadable", "bot", "local", "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/sdxl-turbo", "429",
}  # fmt: skip
"""Every label value the recording below may produce (plus version and bucket boundaries)."""


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompts=st.lists(st.text(min_size=6, max_size=80).filter(lambda p: p.strip()), min_size=1, max_size=4),
    user=st.integers(min_value=10**17, max_value=2**63 - 1),
    model=st.sampled_from(["", "sd15", "turbo", "not-configured", "a prompt as a model"]),
    reason=st.sampled_from(["refused.blocklist", "refused.rate", "refused.queue_full", "refused.anything"]),
    device=st.sampled_from(["cpu", "cuda:0"]),
)
def test_no_label_ever_carries_a_prompt_or_a_member_id(
    prompts: list[str], user: int, model: str, reason: str, device: str
) -> None:
    metrics = Metrics(models=MODELS, process=False)
    for job_id, prompt in enumerate(prompts, start=1):
        request = a_request(user, prompt=prompt, model=model)
        job = Job(job_id, replace(request, negative=prompt, guild_id=user + 1, channel_id=user + 2))
        metrics.job_submitted(job.request)
        metrics.job_refused(job.request, reason)
        for event in (Queued(1), Started(), Progress(1, 2), Preview(1, b"x"), Progress(2, 2)):
            metrics.job_event(job, event)
        outcome = (
            Done(JobResult(job_id, job.tiles, b"", (), 0.1)),
            Failed(Text("text.verbatim", text=prompt)),
            Cancelled(by=prompt),
        )
        metrics.job_event(job, outcome[job_id % 3])
        metrics.model_loaded(device, model or "sd15", 1.0)
        metrics.oom_split(device)
    metrics.interaction("application_command")
    metrics.acknowledged("component", 0.01)
    metrics.http_error(429)
    metrics.rate_limited("0123abcd", "user")
    text = generate_latest(metrics.registry).decode()
    seen = Scrape(text)
    values = seen.label_values()
    unexpected = {v for v in values if v not in VOCABULARY and not _number(v) and v not in ("0123abcd", "")}
    assert unexpected <= {seen_version(seen)}, unexpected
    for prompt in prompts:
        assert all(prompt not in value for value in values if len(prompt.strip()) > 3)
    assert str(user) not in text and str(user + 1) not in text and str(user + 2) not in text


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def seen_version(seen: Scrape) -> str:
    return next(s.labels["version"] for s in seen.samples if s.name == "seedgrid_build_info")


def test_gpu_memory_is_read_at_scrape_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA figures, with torch's CUDA calls standing in (this machine has no GPU): read at every scrape."""
    assert Scrape(generate_latest(Metrics(process=False).registry).decode()).has("seedgrid_uptime_seconds")
    allocated = {0: 1000, 1: 2000}
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index: allocated[index])
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index: 4 * allocated[index])
    metrics = Metrics(process=False)
    first = Scrape(generate_latest(metrics.registry).decode())
    allocated[1] = 3000
    second = Scrape(generate_latest(metrics.registry).decode())
    assert first.value("seedgrid_gpu_memory_allocated_bytes", device="cuda:1") == 2000
    assert second.value("seedgrid_gpu_memory_allocated_bytes", device="cuda:1") == 3000
    assert second.value("seedgrid_gpu_memory_reserved_bytes", device="cuda:0") == 4000
