"""Figure 7: the Redis backend — what dispatching through Redis adds to a job, and throughput with 1 and 2 workers.

One ``redis-server`` on a unix socket in the work folder (``tests.redis_server.running_redis``, no
persistence). The workers are real ``python -m bot worker --config PATH`` subprocesses, as admins
run them; the bot side is ``Engine.open(settings)`` with ``backend = "redis"`` (a
:class:`bot.remote.dispatcher.RedisBackend`), beside an in-process ``Engine.open(settings)`` (``backend =
"local"``) on the same tiny model, in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, Row, Section, median, ms, ratio, settings_text, usable_cores

LABEL = "7 redis"
MISSING = "redis-server is not on PATH (apt-get install redis-server): the Redis figures were not measured"
WORKER_START = 180.0
"""Seconds a worker subprocess may take to load the model and register in Redis."""
WORKER_STOP = 20.0
"""Seconds a worker gets to leave after SIGTERM before it is killed."""
JOB_WAIT = 120.0
"""Seconds one measured job (or one throughput batch) may take before the benchmark gives up."""
OVERHEAD_USER, THROUGHPUT_USER = 7001, 7100


@dataclass(frozen=True)
class Plan:
    overhead_jobs: int = 40
    """Jobs per backend for (a), one at a time, interleaved in-process / Redis."""
    overhead_size: str = "small"
    overhead_steps: int = 1
    throughput_jobs: int = 16
    throughput_members: int = 4
    throughput_size: str = "small"
    throughput_steps: int = 8
    throughput_reps: int = 3
    """Batches of ``throughput_jobs`` per worker count; the figure is the median rate."""


QUICK = Plan(overhead_jobs=12, throughput_jobs=8, throughput_reps=2)


# --- the pieces: redis-server, worker subprocesses ----------------------------------------------


@dataclass
class WorkerProcess:
    name: str
    process: asyncio.subprocess.Process
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


async def _start_worker(config: Path, name: str, folder: Path, threads: int) -> WorkerProcess:
    """``python -m bot worker --config PATH --name NAME`` with ``threads`` torch threads, its output to a log."""
    from bot.config import REDIS_URL_ENV

    environ = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}  # the config's url, not the admin's
    environ.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bot", "worker", "--config", str(config), "--name", name),
            cwd=ROOT,
            env=environ,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return WorkerProcess(name, process, log)


async def _stop_worker(worker: WorkerProcess, grace: float = WORKER_STOP) -> int | None:
    """SIGTERM (the worker finishes its job and leaves Redis tidily), SIGKILL after ``grace`` seconds."""
    process = worker.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode


@contextlib.asynccontextmanager
async def _workers(config: Path, folder: Path, names: list[str], threads: int) -> AsyncIterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    try:
        for name in names:
            started.append(await _start_worker(config, name, folder, threads))
        yield started
    finally:
        await asyncio.gather(*(_stop_worker(w) for w in started))


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    """``SEEDGRID_REDIS_URL`` would win over the benchmark's own server: hide it while the bot side connects."""
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


async def _until_workers(dispatcher: Any, count: int, workers: list[WorkerProcess], within: float) -> float:
    """Wait until the dispatcher sees exactly ``count`` live workers (``workers``: those that should be alive)."""
    started = time.perf_counter()
    while True:
        await dispatcher.refresh_workers()
        if len(dispatcher.workers) == count:
            return time.perf_counter() - started
        for worker in workers:  # the ones that should be alive
            if worker.process.returncode is not None:
                raise RuntimeError(
                    f"worker {worker.name} exited ({worker.process.returncode}) before registering:\n{worker.tail()}"
                )
        if time.perf_counter() - started > within:
            seen = ", ".join(w.name for w in dispatcher.workers) or "none"
            tails = "\n".join(f"--- {w.name} ---\n{w.tail()}" for w in workers)
            raise RuntimeError(f"expected {count} worker(s) in Redis within {within:.0f} s, saw {seen}\n{tails}")
        await asyncio.sleep(0.1)


def _redis_version() -> str:
    try:
        out = subprocess.run(
            ["redis-server", "--version"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip() or "?"


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


# --- the measurements ---------------------------------------------------------------------------


def _request(settings: Any, *, user: int, index: int, size: str, steps: int) -> Any:
    from bot.engine.models import Catalogue
    from bot.inputs import imagine_request

    preset = Catalogue.resolve(settings).default
    return imagine_request(
        preset, prompt=f"redis bench {user} {index}", seed=index, steps=steps, size=size, user_id=user
    )


async def _one_job(engine: Any, request: Any) -> dict[str, float]:
    """Submit one job and wait for its result: end-to-end, the pipeline's own time, and the rest."""
    start = time.perf_counter()
    handle = await engine.submit(request)
    result = await asyncio.wait_for(handle.result(), JOB_WAIT)
    total = time.perf_counter() - start
    return {"end_to_end_s": total, "pipeline_s": result.elapsed, "overhead_s": total - result.elapsed}


async def _overhead(local: Any, remote: Any, settings: Any, plan: Plan) -> dict[str, Any]:
    """(a): ``plan.overhead_jobs`` jobs through each engine, one at a time, alternating which goes first."""
    engines = {"local": local, "redis": remote}
    runs: dict[str, list[dict[str, float]]] = {"local": [], "redis": []}
    for engine in engines.values():  # warm-up: first calls, first connections
        for i in range(2):
            req = _request(settings, user=OVERHEAD_USER, index=i, size=plan.overhead_size, steps=plan.overhead_steps)
            await _one_job(engine, req)
    for i in range(plan.overhead_jobs):
        order = ["local", "redis"] if i % 2 == 0 else ["redis", "local"]
        for name in order:
            req = _request(
                settings, user=OVERHEAD_USER, index=100 + i, size=plan.overhead_size, steps=plan.overhead_steps
            )
            runs[name].append(await _one_job(engines[name], req))
    out: dict[str, Any] = {}
    for name, jobs in runs.items():
        out[name] = {
            "overhead_p50_s": median([j["overhead_s"] for j in jobs]),
            "end_to_end_p50_s": median([j["end_to_end_s"] for j in jobs]),
            "pipeline_p50_s": median([j["pipeline_s"] for j in jobs]),
            "overhead_min_s": min(j["overhead_s"] for j in jobs),
            "overhead_max_s": max(j["overhead_s"] for j in jobs),
        }
    paired = [r["overhead_s"] - lo["overhead_s"] for r, lo in zip(runs["redis"], runs["local"], strict=True)]
    out["redis_adds_s"] = out["redis"]["overhead_p50_s"] - out["local"]["overhead_p50_s"]
    out["redis_adds_paired_p50_s"] = median(paired)
    out["jobs"] = plan.overhead_jobs
    return out


async def _batch(engine: Any, settings: Any, plan: Plan, rep: int) -> dict[str, Any]:
    """``plan.throughput_jobs`` jobs from ``plan.throughput_members`` members, all queued at once; time to drain."""
    requests = [
        _request(
            settings,
            user=THROUGHPUT_USER + i % plan.throughput_members,
            index=1000 * (rep + 1) + i,
            size=plan.throughput_size,
            steps=plan.throughput_steps,
        )
        for i in range(plan.throughput_jobs)
    ]
    start = time.perf_counter()
    handles = [await engine.submit(r) for r in requests]
    results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), JOB_WAIT)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "jobs_per_s": len(results) / wall,
        "pipeline_sum_s": sum(r.elapsed for r in results),
        "job_ids": [h.job.id for h in handles],
    }


async def _ran_on(client: Any, keys: Any, job_ids: list[int]) -> dict[str, int]:
    """Which worker started each job (from the jobs' event streams): jobs per worker."""
    counts: dict[str, int] = {}
    for job_id in job_ids:
        for _, fields in await client.xrange(keys.events(job_id)):
            if fields.get(b"type") == b"started":
                name = fields.get(b"worker", b"?").decode()
                counts[name] = counts.get(name, 0) + 1
    return counts


async def _throughput(engine: Any, client: Any | None, settings: Any, plan: Plan, workers: int) -> dict[str, Any]:
    """(b): ``plan.throughput_reps`` batches; ``client`` (Redis) to count the jobs each worker ran."""
    from bot.remote.wire import Keys

    batches = [await _batch(engine, settings, plan, rep) for rep in range(plan.throughput_reps)]
    ran_on: dict[str, int] = {}
    for b in batches:
        job_ids = b.pop("job_ids")
        if client is not None:
            for name, n in (await _ran_on(client, Keys(settings.redis.prefix), job_ids)).items():
                ran_on[name] = ran_on.get(name, 0) + n
    rate = median([b["jobs_per_s"] for b in batches])
    busy = median([b["pipeline_sum_s"] / (workers * b["wall_s"]) for b in batches])
    return {"jobs_per_s": rate, "batches": batches, "jobs_per_worker": ran_on, "pipeline_busy_fraction": busy}


@dataclass
class Rig:
    local: Any
    """The in-process Engine."""
    remote: Any
    """The Engine whose backend is :attr:`dispatcher`."""
    dispatcher: Any
    """That engine's RedisBackend (the benchmark built it, to watch its workers)."""
    client: Any
    """A Redis client of the benchmark's own (to read which worker ran what)."""
    pool: list[WorkerProcess]
    local_settings: Any
    redis_settings: Any


async def _measure(rig: Rig, plan: Plan, log: Callable[[str], None], torch_threads: int) -> dict[str, Any]:
    """With 2 workers registered: throughput with 2, then 1, then in-process; then the overhead per job."""
    remote, local, client = rig.remote, rig.local, rig.client
    # warm-up: a few jobs, so both workers (and the in-process engine, later) have run some
    warm = Plan(throughput_jobs=4, throughput_reps=1, throughput_members=2, throughput_steps=1)
    await _throughput(remote, client, rig.redis_settings, warm, 2)
    batches = f"{plan.throughput_reps} × {plan.throughput_jobs} jobs"
    log(f"redis: throughput, 2 workers, {batches}")
    two = await _throughput(remote, client, rig.redis_settings, plan, 2)
    await _stop_worker(rig.pool[1])
    await _until_workers(rig.dispatcher, 1, rig.pool[:1], WORKER_STOP)
    log(f"redis: throughput, 1 worker, {batches}")
    one = await _throughput(remote, client, rig.redis_settings, plan, 1)
    log(f"redis: throughput in-process (torch on {torch_threads} threads), {batches}")
    await _throughput(local, None, rig.local_settings, warm, 1)
    inproc = await _throughput(local, None, rig.local_settings, plan, 1)
    log(f"redis: overhead per job, {plan.overhead_jobs} jobs each, in-process and through Redis")
    overhead = await _overhead(local, remote, rig.redis_settings, plan)
    return {
        "overhead": overhead,
        "throughput": {"1_worker": one, "2_workers": two, "in_process": inproc},
        "jobs_left_in_stream": await client.xlen(rig.dispatcher.keys.jobs_for(rig.dispatcher.models.default.name)),
    }


# --- the section ---------------------------------------------------------------------------------


async def run(model: Path, workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    section = Section("redis")
    if shutil.which("redis-server") is None:
        section.rows.append(Row(LABEL, "skipped: redis-server is not on PATH", "not measured"))
        section.notes.append(MISSING)
        section.figures = {"skipped": MISSING}
        return section

    from bot.config import REDIS_URL_ENV, parse_settings
    from bot.engine import Catalogue, Engine
    from bot.engine.store import Store
    from bot.remote.connection import connect
    from bot.remote.dispatcher import RedisBackend
    from tests.redis_server import running_redis

    folder = workdir / "redis"
    threads = max(1, usable_cores() // 2)
    torch_threads = _torch_threads()
    figures: dict[str, Any] = {
        "redis_server": _redis_version(),
        "worker_torch_threads": threads,
        "in_process_torch_threads": torch_threads,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with running_redis(folder) as server:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        extra = f'backend = "redis"\n\n[redis]\nurl = "{server.url}"\nprefix = "{prefix}"\n'
        config = folder / "worker.toml"
        redis_text = settings_text(model, folder / "redis-bot.db", extra=extra)
        config.write_text(redis_text, encoding="utf-8")
        redis_settings = parse_settings(redis_text)
        local_settings = parse_settings(settings_text(model, folder / "local-bot.db"))
        log(f"redis: redis-server {figures['redis_server']} on {server.socket}; 2 × python -m bot worker")
        async with contextlib.AsyncExitStack() as stack:
            started = time.perf_counter()
            pool = await stack.enter_async_context(_workers(config, folder, ["bench-w1", "bench-w2"], threads))
            local = await Engine.open(local_settings)
            stack.push_async_callback(local.close)
            with _without_env(REDIS_URL_ENV):
                models = Catalogue.resolve(redis_settings)
                dispatcher = RedisBackend.from_settings(redis_settings, models, want_tiles=False)
                await dispatcher.start()
                remote = Engine(await Store.open(redis_settings.storage.database), dispatcher, models)
                stack.push_async_callback(remote.close, grace=5.0)
                client = await connect(redis_settings.redis, url=server.url)
                stack.push_async_callback(client.aclose)
            rig = Rig(local, remote, dispatcher, client, pool, local_settings, redis_settings)
            await _until_workers(dispatcher, 2, pool, WORKER_START)
            figures["workers_ready_s"] = time.perf_counter() - started
            log(f"redis: 2 workers registered after {figures['workers_ready_s']:.1f} s")
            figures.update(await _measure(rig, plan, log, torch_threads))
    figures["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    throughput = figures["throughput"]
    overhead = figures["overhead"]
    section.figures = figures
    _rows(section, plan, overhead, throughput, threads, torch_threads)
    return section


def _rows(
    section: Section,
    plan: Plan,
    overhead: dict[str, Any],
    throughput: dict[str, dict[str, Any]],
    threads: int,
    torch_threads: int,
) -> None:
    lo, re_ = overhead["local"]["overhead_p50_s"], overhead["redis"]["overhead_p50_s"]
    one, two, inproc = (throughput[k]["jobs_per_s"] for k in ("1_worker", "2_workers", "in_process"))
    job = f"{plan.throughput_jobs} jobs of 4×64², {plan.throughput_steps} steps"
    section.rows += [
        Row(
            LABEL,
            f"4×64² job, {plan.overhead_steps} step: end-to-end − pipeline (median of {plan.overhead_jobs})",
            f"Redis {ms(re_)}",
            f"in-process {ms(lo)}",
            ratio(re_, lo),
        ),
        Row(LABEL, "  what Redis adds per job (difference)", ms(overhead["redis_adds_s"])),
        Row(LABEL, f"throughput, {job}: 1 worker", f"{one:.2f} jobs/s"),
        Row(LABEL, "throughput: 2 workers (vs 1)", f"{two:.2f} jobs/s", f"1 worker {one:.2f} jobs/s", ratio(two, one)),
        Row(
            LABEL,
            f"  2 workers vs one in-process engine ({torch_threads} torch threads)",
            f"{two:.2f} jobs/s",
            f"in-process {inproc:.2f} jobs/s",
            ratio(two, inproc),
        ),
    ]
    per_worker = ", ".join(f"{n} {c}" for n, c in sorted(throughput["2_workers"]["jobs_per_worker"].items()))
    busy = {k: f"{v['pipeline_busy_fraction']:.0%}" for k, v in throughput.items()}
    section.notes.append(
        "Redis (a): one redis-server on a unix socket; the worker is a `python -m bot worker` subprocess; the bot "
        'side is Engine.open with backend = "redis", next to an in-process Engine.open on the same tiny model. '
        f"{plan.overhead_jobs} jobs (4 tiles at 64², {plan.overhead_steps} step) per backend, one at a time, "
        "alternating which goes first; per job: the time from Engine.submit to handle.result() minus "
        "JobResult.elapsed (the pipeline call's own time, measured where it ran). Both include the store's write "
        "and the grid's composition and PNG; Redis adds the hand-out, the worker's read, its events and the grid "
        f"crossing Redis. Median of the paired differences: {ms(overhead['redis_adds_paired_p50_s'])}."
    )
    section.notes.append(
        f"Redis (b): {job} from {plan.throughput_members} members, queued at once; jobs per second to drain them "
        f"(median of {plan.throughput_reps} batches), with 2 worker subprocesses, then 1 (the second stopped with "
        f"SIGTERM), then the in-process engine. Every worker runs with OMP_NUM_THREADS={threads} (usable cores ÷ 2) "
        "in both cases, so that the comparison is at a fixed worker size and 2 workers fill the machine: 1 worker "
        "leaves cores idle, which is where most of the 2-vs-1 gain comes from on a CPU box. Started with torch's "
        "default threads, each worker would use every core, and on 2 cores a second one would be expected to gain "
        "little or even lose, the two fighting for the same cores (not measured here). The fair CPU comparison "
        f"for 2 workers is one process with torch on all cores (the last row, {torch_threads} threads): "
        f"{_versus(two, inproc, one, threads)} On a GPU host each worker has a GPU of its own, and the figure that "
        "carries over is the per-job overhead of (a). Pipeline-busy fraction (sum of JobResult.elapsed ÷ (workers × "
        f"wall)): 1 worker {busy['1_worker']}, 2 workers {busy['2_workers']}, in-process {busy['in_process']}; "
        f"jobs per worker with 2: {per_worker}."
    )


def _versus(two: float, inproc: float, one: float, threads: int) -> str:
    """A sentence on 2 workers against one in-process engine, from this run's figures."""
    base = (
        f"one process with torch on all cores drains the queue at {ratio(inproc, one)} the rate of one worker on "
        f"{threads} thread(s) (torch's threads gain little on the tiny model's small 64² matrices, and they wait "
        "for each other, so any other busy process slows them most)"
    )
    if two >= inproc * 1.1:
        return f"here the 2 workers are {ratio(two, inproc)} faster: {base}, while two processes run two jobs at once."
    if two <= inproc / 1.1:
        return f"here one process is {ratio(inproc, two)} faster than the 2 workers; {base}."
    return f"here they are within 10 % of each other; {base}."
