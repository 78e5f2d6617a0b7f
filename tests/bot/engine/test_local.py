"""``LocalBackend`` (``bot/engine/local.py``) with a stand-in renderer whose steps the test releases one by one.

The real renderer is covered in ``tests/bot/diffusion/test_renderer.py`` and the end-to-end tests.
"""

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from bot.config import ExecutorSettings
from bot.engine import (
    BackendClosedError,
    Cancelled,
    Done,
    Failed,
    Interrupted,
    Loading,
    LocalBackend,
    Progress,
    Queued,
    QueueFullError,
    Started,
    StopReason,
)
from bot.inputs import imagine_request
from bot.jobs import Job, JobResult, RenderCancelled
from tests.polling import until
from tests.presets import SD15


class StepRenderer:
    """Takes ``steps`` steps, each waiting for the test to release it (so tests control timing)."""

    def __init__(self) -> None:
        self.thread_ids: set[int] = set()
        self.gate = threading.Semaphore(0)
        self.fail_with: Exception | None = None

    def render(
        self,
        job: Job,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        on_preview: Callable[[int, bytes], None] | None = None,
        on_load: Callable[[str], None] | None = None,
    ) -> JobResult:
        self.thread_ids.add(threading.get_ident())
        if self.fail_with is not None:
            raise self.fail_with
        if job.request.model and on_load is not None:  # a model this pretend device does not hold yet
            on_load(job.request.model)
        total = job.request.steps
        for step in range(1, total + 1):
            self.gate.acquire(timeout=5)
            if should_stop():
                raise RenderCancelled
            on_step(step, total)
        return JobResult(job.id, job.tiles, b"grid", (b"1", b"2", b"3", b"4"), elapsed=0.1)


def job(job_id: int, steps: int = 2, user: int = 0) -> Job:
    request = imagine_request(SD15, prompt=f"job {job_id}", seed=job_id, steps=steps, user_id=user)
    return Job(job_id, request)


@pytest.fixture
async def setup() -> tuple[LocalBackend, StepRenderer]:
    renderer = StepRenderer()
    backend = LocalBackend({"cpu": lambda: renderer})
    await backend.start()
    yield backend, renderer
    for _ in range(100):
        renderer.gate.release()
    await backend.close()


async def test_events_in_order_on_one_worker_thread(setup: tuple[LocalBackend, StepRenderer]) -> None:
    backend, renderer = setup
    first, second = backend.submit(job(1)), backend.submit(job(2))
    for _ in range(4):
        renderer.gate.release()
    events = [e async for e in first.events()]
    assert events[0] == Queued(1)
    assert Started() in events
    assert [(e.step, e.total) for e in events if isinstance(e, Progress)] == [(1, 2), (2, 2)]
    assert isinstance(events[-1], Done)
    seen = [e async for e in second.events()]
    assert seen[:2] == [Queued(2), Queued(1)]  # it moved up when the first job started
    assert isinstance(seen[-1], Done)
    assert len(renderer.thread_ids) == 1
    assert threading.get_ident() not in renderer.thread_ids


async def test_a_model_load_is_an_event_between_started_and_progress(
    setup: tuple[LocalBackend, StepRenderer],
) -> None:
    """A job for a model its device does not hold says so ("loading the model …") before its steps."""
    backend, renderer = setup
    handle = backend.submit(Job(1, replace(job(1).request, model="other")))
    for _ in range(2):
        renderer.gate.release()
    events = [e async for e in handle.events()]
    kinds = [type(e) for e in events]
    assert kinds.index(Started) < kinds.index(Loading) < kinds.index(Progress)
    assert Loading("other") in events


async def test_cancel_queued_and_running(setup: tuple[LocalBackend, StepRenderer]) -> None:
    backend, renderer = setup
    running, queued = backend.submit(job(1, steps=50)), backend.submit(job(2))
    await running.started.wait()
    backend.cancel(queued)
    assert await queued.wait() == Cancelled()
    backend.cancel(running)
    renderer.gate.release()
    assert await running.wait() == Cancelled()
    with pytest.raises(RenderCancelled):
        await running.result()


async def test_a_failure_is_reported_and_the_next_job_runs(setup: tuple[LocalBackend, StepRenderer]) -> None:
    backend, renderer = setup
    renderer.fail_with = RuntimeError("secret internals")
    failed = await backend.submit(job(1)).wait()
    assert isinstance(failed, Failed)
    assert "secret" not in str(failed.reason) and "log" in str(failed.reason)
    renderer.fail_with = None
    handle = backend.submit(job(2))
    for _ in range(2):
        renderer.gate.release()
    assert isinstance(await asyncio.wait_for(handle.wait(), 5), Done)


async def test_close_finishes_the_running_job_and_keeps_the_queue() -> None:
    renderer = StepRenderer()
    backend = LocalBackend({"cpu": lambda: renderer})
    await backend.start()
    running, queued = backend.submit(job(1, steps=3)), backend.submit(job(2))
    await running.started.wait()
    closing = asyncio.create_task(backend.close(grace=5))
    assert await queued.wait() == Interrupted()  # left in the store for the next start
    for _ in range(3):
        renderer.gate.release()
    await closing
    assert isinstance(await running.wait(), Done)  # it had the grace period to finish
    with pytest.raises(BackendClosedError):
        backend.submit(job(3))
    with pytest.raises(BackendClosedError):
        backend.check_capacity(0)


async def test_close_stops_a_running_job_after_the_grace_period() -> None:
    renderer = StepRenderer()
    backend = LocalBackend({"cpu": lambda: renderer})
    await backend.start()
    running = backend.submit(job(1, steps=50))
    await running.started.wait()
    closing = asyncio.create_task(backend.close(grace=0.1))
    await until(running.should_stop, within=10)  # the grace period is over: the job is asked to stop
    assert running.stop_reason is StopReason.SHUTDOWN
    renderer.gate.release()  # its next step sees it
    await closing
    assert await running.wait() == Interrupted()


async def test_round_robin_between_users(setup: tuple[LocalBackend, StepRenderer]) -> None:
    backend, renderer = setup
    handles = [backend.submit(job(i, steps=1, user=1)) for i in range(1, 11)]
    handles.append(backend.submit(job(100, steps=1, user=2)))
    assert [j.id for j in backend.waiting] == [1, 100, *range(2, 11)]
    finished: list[int] = []
    waits = [asyncio.ensure_future(h.wait()) for h in handles]
    for handle, waiter in zip(handles, waits, strict=True):
        waiter.add_done_callback(lambda _, job_id=handle.job.id: finished.append(job_id))
    for _ in range(11):
        renderer.gate.release()
    await asyncio.gather(*waits)
    assert finished == [1, 100, *range(2, 11)]  # the light user's job runs second, not eleventh


async def test_caps_refuse_with_a_reason() -> None:
    backend = LocalBackend({"cpu": StepRenderer}, ExecutorSettings(per_user_limit=2, queue_limit=3))
    await backend.start()
    try:
        backend.submit(job(1, steps=50, user=7))
        backend.submit(job(2, user=7))
        with pytest.raises(QueueFullError, match="already have 2 jobs"):
            backend.check_capacity(7)
        backend.check_capacity(8)
        with pytest.raises(QueueFullError, match="already have 2 jobs"):
            backend.check_capacity(8, pending_user=2)
        backend.submit(job(3, user=8))
        with pytest.raises(QueueFullError, match="queue is full"):
            backend.check_capacity(9)
    finally:
        await backend.close(grace=0)


async def test_a_job_over_the_time_limit_is_stopped_and_reported() -> None:
    renderer = StepRenderer()
    backend = LocalBackend({"cpu": lambda: renderer}, ExecutorSettings(job_timeout=1))
    await backend.start()
    try:
        handle = backend.submit(job(1, steps=50))
        await handle.started.wait()
        await until(handle.should_stop, within=10)  # after job_timeout the job is asked to stop
        assert handle.stop_reason is StopReason.TIMEOUT
        renderer.gate.release()  # its next step sees it
        outcome = await asyncio.wait_for(handle.wait(), 5)
        assert isinstance(outcome, Failed)
        assert "time limit" in str(outcome.reason)
        nxt = backend.submit(job(2, steps=1))
        renderer.gate.release()
        assert isinstance(await asyncio.wait_for(nxt.wait(), 5), Done)
    finally:
        await backend.close(grace=0)
