"""Figures without Discord: fairness of the queue (through the engine) and batching (through the pipeline).

Both load the tiny model with the bot's own code: ``Engine.open(settings)`` and
``Pipeline.load(settings.model)``, the path a Hub id takes in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Row, Section, median, ms, ratio, settings_text

HEAVY, LIGHT, WARM, BLOCKER = 1001, 2002, 3003, 4004


@dataclass(frozen=True)
class Plan:
    heavy_jobs: int = 10
    fair_size: str = "small"
    fair_steps: int = 20
    """Long enough (~0.3 s a job here) that the heavy member's first job is still running when the light one arrives."""
    batch_sizes: tuple[int, ...] = (64, 256)
    batch_steps: int = 4
    batch_reps: tuple[int, ...] = (7, 3)
    """Repetitions per size (same order as ``batch_sizes``)."""


QUICK = Plan(batch_reps=(3, 1))


# --- figure 4: fairness ------------------------------------------------------------------------


async def fairness(model: Path, workdir: Path, plan: Plan) -> Section:
    """A heavy member queues ``plan.heavy_jobs`` jobs, then a light member queues one; when does it start?

    Two scenarios through one engine: *idle* (the heavy member's first job starts at once, as
    on a quiet bot) and *busy* (a third member's job is running when the heavy member queues).
    FIFO would run the light job last of the 11; a fair round-robin runs it right after the
    heavy member's first. The FIFO wait is computed from the same run's job durations.
    """
    from bot.config import parse_settings
    from bot.engine import Engine

    settings = parse_settings(settings_text(model, workdir / "fairness.db"))
    engine = await Engine.open(settings)
    try:
        await (await engine.submit(_request(settings, plan, WARM, 0))).result()
        runs = {busy: await _fair_run(engine, settings, plan, busy=busy) for busy in ("idle", "busy")}
    finally:
        await engine.close()

    section = Section("fairness")
    total = plan.heavy_jobs + 1
    section.figures = {"job": f"4 tiles at {plan.fair_size}, {plan.fair_steps} steps", **runs}
    for name, run in runs.items():
        ideal = 1 if name == "idle" else 2
        section.rows += [
            Row(
                "4 fairness",
                f"{name} bot: light job runs as # (heavy queued {plan.heavy_jobs})",
                f"#{run['light_position']} of {total}",
                f"FIFO #{total}",
                target="#2",
                ok=run["light_position"] == 2,
            ),
            Row(
                "4 fairness",
                f"{name} bot: jobs the light one waited for",
                f"{run['jobs_waited_for']} ({run['light_wait_job_times']:.1f} job-times)",
                f"FIFO {run['fifo_jobs_waited_for']} ({run['fifo_wait_job_times']:.1f})",
                ratio(run["fifo_jobs_waited_for"], run["jobs_waited_for"]),
                f"{ideal}",
                run["jobs_waited_for"] <= ideal,
            ),
        ]
    job_time = runs["idle"]["job_time_s"]
    section.notes.append(
        f"Fairness through Engine.submit; one job-time = {ms(job_time)} (the median spacing of job starts; "
        f"jobs of 4 tiles at {plan.fair_size}, {plan.fair_steps} steps). Position counts the heavy member's "
        f"{plan.heavy_jobs} jobs and the light one; 'busy' adds a third member's job running first (its rest "
        "counts in the wait). FIFO figures are computed from the same run's job-time."
    )
    return section


def _request(settings: Any, plan: Plan, user: int, index: int) -> Any:
    from bot.engine.models import Catalogue
    from bot.inputs import imagine_request

    return imagine_request(
        Catalogue.resolve(settings).default,
        prompt=f"member {user} job {index}",
        seed=index,
        steps=plan.fair_steps,
        size=plan.fair_size,
        user_id=user,
    )


async def _fair_run(engine: Any, settings: Any, plan: Plan, *, busy: str) -> dict[str, Any]:
    started: dict[str, float] = {}
    finished: dict[str, float] = {}

    async def follow(name: str, handle: Any) -> None:
        await handle.started.wait()
        started[name] = time.perf_counter()
        await handle.wait()
        finished[name] = time.perf_counter()

    followers = []
    if busy == "busy":
        blocker = await engine.submit(_request(settings, plan, BLOCKER, 0))
        followers.append(asyncio.create_task(follow("blocker", blocker)))
        await blocker.started.wait()
    for i in range(plan.heavy_jobs):
        handle = await engine.submit(_request(settings, plan, HEAVY, i))
        followers.append(asyncio.create_task(follow(f"heavy{i}", handle)))
    light_submitted = time.perf_counter()
    light = await engine.submit(_request(settings, plan, LIGHT, 0))
    followers.append(asyncio.create_task(follow("light", light)))
    await asyncio.gather(*followers)

    heavy = [f"heavy{i}" for i in range(plan.heavy_jobs)]
    order = sorted([*heavy, "light"], key=started.__getitem__)
    # one job-time: the spacing of consecutive starts (a job plus the bot's hand-over to the next)
    starts = sorted(started.values())
    job_time = median([b - a for a, b in itertools.pairwise(starts)])
    wait = started["light"] - light_submitted
    # FIFO: the light job would start once every job before it has run
    first = "blocker" if busy == "busy" else heavy[0]
    ahead = plan.heavy_jobs + (1 if busy == "busy" else 0)
    fifo_wait = started[first] + ahead * job_time - light_submitted
    waited_for = sum(1 for name, at in started.items() if at < started["light"] and finished[name] > light_submitted)
    return {
        "light_position": order.index("light") + 1,
        "jobs_waited_for": waited_for,
        "fifo_jobs_waited_for": ahead,
        "order": order,
        "light_wait_s": wait,
        "light_wait_job_times": wait / job_time,
        "fifo_wait_s": fifo_wait,
        "fifo_wait_job_times": fifo_wait / job_time,
        "job_time_s": job_time,
    }


# --- figure 5: batching ------------------------------------------------------------------------


def _load_pipeline(settings: Any) -> Any:
    from bot.diffusion.pipeline import Pipeline

    if "safety_checker" in inspect.signature(Pipeline.load).parameters:
        return Pipeline.load(settings.model, safety_checker=False)
    return Pipeline.load(settings.model)


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batching(model: Path, workdir: Path, plan: Plan) -> Section:
    """One batched 4-tile call against four 1-tile calls, for /imagine (4 seeds) and refine (1 seed, 4 suffixes)."""
    import numpy as np

    from bot.config import parse_settings
    from bot.jobs import GenParams, Tile

    settings = parse_settings(settings_text(model, workdir / "batching.db"))
    pipeline = _load_pipeline(settings)
    suffixes = settings.refine.suggestions or (", a", ", b", ", c", ", d")
    section = Section("batching")
    for side, reps in zip(plan.batch_sizes, plan.batch_reps, strict=True):
        base = GenParams(tiles=(), negative="", steps=plan.batch_steps, guidance=7.5, width=side, height=side)
        jobs = {
            "imagine": dataclasses.replace(base, tiles=tuple(Tile("a lighthouse at dusk", 40 + i) for i in range(4))),
            "refine": dataclasses.replace(
                base, tiles=tuple(Tile("a lighthouse at dusk" + s, 41) for s in suffixes[:4])
            ),
        }
        for kind, params in jobs.items():
            singles = [dataclasses.replace(params, tiles=(tile,)) for tile in params.tiles]
            batched_out = pipeline.generate(params)  # warm-up, and the images to compare
            single_out = [pipeline.generate(p) for p in singles]
            batched_t: list[float] = []
            single_t: list[float] = []
            for rep in range(reps):  # alternate the order: neither gets a warmer cache every time
                runs = [
                    ("b", lambda p=params: pipeline.generate(p)),
                    ("s", lambda ps=singles: [pipeline.generate(p) for p in ps]),
                ]
                for name, fn in runs if rep % 2 == 0 else reversed(runs):
                    (batched_t if name == "b" else single_t).append(_time(fn))
            diff = max(
                float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b.images[0], dtype=np.int16)).max())
                for a, b in zip(batched_out.images, single_out, strict=True)
            )
            b, s = median(batched_t), median(single_t)
            section.figures[f"{kind}_{side}"] = {
                "batched_s": b,
                "four_singles_s": s,
                "speedup": s / b,
                "reps": reps,
                "max_pixel_difference_batched_vs_single": diff,
            }
            section.rows.append(
                Row(
                    "5 batching",
                    f"{kind} at {side}²: one 4-tile call (vs 4 × 1 tile)",
                    ms(b),
                    f"4 singles {ms(s)}",
                    ratio(s, b),
                    "> 1×",
                    s > b,
                )
            )
    section.notes.append(
        f"Batching on the TINY random model (UNet 32/64 channels), {plan.batch_steps} steps, guidance 7.5, on CPU: "
        "the ratio says how much per-call overhead batching saves here, not what a GPU gains with SD 1.5. "
        "max_pixel_difference in the JSON compares each batched tile with the same seed drawn alone (0-255 scale)."
    )
    return section
