"""Executor semantics with a stand-in renderer (the real pipeline is covered in test_pipeline and e2e)."""

import asyncio
import threading
from collections.abc import Callable

import pytest

from bot.config import GenerationSettings
from bot.executor import Cancelled, Done, Executor, ExecutorClosedError, Failed, Progress, Queued, Started
from bot.jobs import Job, JobResult, RenderCancelled
from bot.requests import imagine_request


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
    ) -> JobResult:
        self.thread_ids.add(threading.get_ident())
        if self.fail_with is not None:
            raise self.fail_with
        total = job.request.steps
        for step in range(1, total + 1):
            self.gate.acquire(timeout=5)
            if should_stop():
                raise RenderCancelled
            on_step(step, total)
        return JobResult(job.id, job.tiles, b"grid", (b"1", b"2", b"3", b"4"), elapsed=0.1)


def job(job_id: int, steps: int = 2) -> Job:
    return Job(job_id, imagine_request(GenerationSettings(), prompt=f"job {job_id}", seed=job_id, steps=steps))


@pytest.fixture
async def setup() -> tuple[Executor, StepRenderer]:
    renderer = StepRenderer()
    executor = Executor({"cpu": lambda: renderer})
    await executor.start()
    yield executor, renderer
    for _ in range(100):
        renderer.gate.release()
    await executor.close()


async def test_events_in_order_on_one_worker_thread(setup: tuple[Executor, StepRenderer]) -> None:
    executor, renderer = setup
    first, second = executor.submit(job(1)), executor.submit(job(2))
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


async def test_cancel_queued_and_running(setup: tuple[Executor, StepRenderer]) -> None:
    executor, renderer = setup
    running, queued = executor.submit(job(1, steps=50)), executor.submit(job(2))
    await running.started.wait()
    executor.cancel(queued)
    assert await queued.wait() == Cancelled()
    executor.cancel(running)
    renderer.gate.release()
    assert await running.wait() == Cancelled()
    with pytest.raises(RenderCancelled):
        await running.result()


async def test_a_failure_is_reported_and_the_next_job_runs(setup: tuple[Executor, StepRenderer]) -> None:
    executor, renderer = setup
    renderer.fail_with = RuntimeError("secret internals")
    failed = await executor.submit(job(1)).wait()
    assert isinstance(failed, Failed)
    assert "secret" not in failed.reason and "log" in failed.reason
    renderer.fail_with = None
    handle = executor.submit(job(2))
    for _ in range(2):
        renderer.gate.release()
    assert isinstance(await asyncio.wait_for(handle.wait(), 5), Done)


async def test_closed_executor_refuses_and_cancels_the_queue() -> None:
    renderer = StepRenderer()
    executor = Executor({"cpu": lambda: renderer})
    await executor.start()
    running, queued = executor.submit(job(1, steps=3)), executor.submit(job(2))
    await running.started.wait()
    closing = asyncio.create_task(executor.close())
    await asyncio.sleep(0)
    for _ in range(5):
        renderer.gate.release()
    await closing
    assert await queued.wait() == Cancelled()
    assert await running.wait() == Cancelled()
    with pytest.raises(ExecutorClosedError):
        executor.submit(job(3))
