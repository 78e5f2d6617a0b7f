"""Figure 6: the bot process's memory, peak and over many jobs.

``python -m bot run`` (the real entry point, unmodified) runs as a subprocess against the
fake Discord; members send /imagine commands (a few in flight at a time) and the bot's
resident set (``VmRSS`` in ``/proc/<pid>/status``) is read after every 20 delivered grids.
The slope over those samples, after the first, is the growth per job; it must be ~0.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import MB, Row, Section, slope
from benchmarks.discord_bench import TOKEN, bot_process, has_grid
from tests.fakediscord import FakeDiscord

GRID_WAIT = 60.0
"""Seconds to wait for one job's grid (8 in flight; a 64² job takes well under a second)."""
FLAT = 2.0
"""MB per 100 jobs: below this the resident set counts as flat (allocator noise)."""


@dataclass(frozen=True)
class Plan:
    jobs: int = 200
    every: int = 20
    in_flight: int = 8
    judge: bool = True
    """Check the slope against :data:`FLAT` (a short run is within allocator noise, ±3 MB: no verdict)."""


QUICK = Plan(jobs=100, judge=False)


async def run(model: Path, workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    samples: list[tuple[int, int]] = []
    async with FakeDiscord(token=TOKEN) as fake:
        log(f"memory: python -m bot run, {plan.jobs} jobs (64², 1 step) through the fake Discord")
        async with bot_process("cli", fake, model, workdir / "memory") as bot:
            baseline = bot.memory()
            samples.append((0, baseline["VmRSS"]))
            members = [fake.add_member(f"m{i}") for i in range(plan.jobs)]
            gate = asyncio.Semaphore(plan.in_flight)
            done = 0
            failures: list[str] = []

            async def one(i: int) -> None:
                nonlocal done
                async with gate:
                    ix = await fake.slash(members[i], "imagine", prompt=f"memory {i}", seed=i, steps=1, size="small")
                    try:
                        await ix.wait_original(has_grid, timeout=GRID_WAIT)
                    except TimeoutError:
                        answers = [r.body for r in ix.responses]
                        failures.append(f"job {i}: no grid ({ix!r}, answered {answers}, refused {ix.rejected})")
                        return
                done += 1
                if done % plan.every == 0:
                    samples.append((done, bot.memory()["VmRSS"]))

            await asyncio.gather(*(one(i) for i in range(plan.jobs)))
            peak = bot.memory()["VmHWM"]
            if failures:
                print(f"--- the bot's log: warnings and errors ---\n{bot.log_problems()}", file=sys.stderr)
        violations = len(fake.violations) + len(fake.protocol_errors)

    steady = [(n, rss) for n, rss in samples if n >= plan.every]
    per_job = slope([n for n, _ in steady], [rss for _, rss in steady])  # bytes per job
    per_100 = per_job * 100 / MB
    first, last = steady[0], steady[-1]
    section = Section("memory")
    section.figures = {
        "rss_after_load_bytes": baseline["VmRSS"],
        "peak_rss_bytes": peak,
        "samples": [{"jobs": n, "rss_bytes": rss} for n, rss in samples],
        "slope_mb_per_100_jobs": per_100,
        "growth_first_to_last_mb": (last[1] - first[1]) / MB,
        "fake_violations": violations,
        "failures": failures,
    }
    if failures:
        section.notes.append(f"{len(failures)} job(s) got no grid: {failures[:3]}")
    flat = (not math.isnan(per_100) and per_100 <= FLAT) if plan.judge else None
    section.rows += [
        Row("6 memory", "RSS after loading (tiny model, idle)", f"{baseline['VmRSS'] / MB:.0f} MB"),
        Row("6 memory", f"peak RSS over {plan.jobs} jobs", f"{peak / MB:.0f} MB"),
        Row(
            "6 memory",
            f"grids delivered (none within {GRID_WAIT:.0f} s = lost)",
            f"{plan.jobs - len(failures)}/{plan.jobs}",
            target="all",
            ok=not failures,
        ),
        Row(
            "6 memory",
            f"RSS slope, jobs {first[0]}-{last[0]}",
            f"{per_100:+.2f} MB/100 jobs",
            f"{first[1] / MB:.0f} → {last[1] / MB:.0f} MB",
            target=f"≤ {FLAT:.0f} MB/100",
            ok=flat,
        ),
    ]
    section.notes.append(
        f"Memory: python -m bot run in its own process; {plan.jobs} /imagine jobs (4 tiles, 64², 1 step) from "
        f"{plan.jobs} members, {plan.in_flight} in flight; VmRSS every {plan.every} grids; the slope leaves out the "
        "start-up sample."
    )
    return section
