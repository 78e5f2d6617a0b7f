"""Figure 8: the soak — every accepted job delivered exactly once, cancelled, or failed aloud, through faults and kills.

``tests.soak.run_soak`` at full size, ``runs`` times with consecutive seeds: a real ``python -m bot run``
against the fake Discord, several members sending /imagine, refining tiles and re-rolling at a steady
pace and cancelling some of their jobs, 429s and 500/502/503s on every route a job's message goes
through (some aimed at the grid's upload), a definitive 403 on a grid, one gateway drop and two kill -9s
of the bot at moments drawn from the seed, each followed by a restart on the same database. Once the
last bot has settled every job, each job an acknowledged interaction made is put in one box (delivered,
cancelled, failed aloud, lost, duplicated); see ``tests/soak.py``. The CI suite runs the same soak at a
small size (``tests/cogs/test_soak.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import Row, Section
from tests.soak import SoakPlan, SoakReport, run_soak

LABEL = "8 soak"


@dataclass(frozen=True)
class Plan:
    runs: int = 3
    first_seed: int = 1
    soak: SoakPlan = field(default_factory=SoakPlan)
    """The full size: 120 job-making interactions from 6 members (tests.soak.SoakPlan's defaults)."""


QUICK = Plan(runs=1, soak=dataclasses.replace(SoakPlan(), jobs=100))


def _row(report: SoakReport) -> Row:
    c = report.counts
    clean = c["lost"] == 0 and c["duplicated"] == 0 and c["inconsistent"] == 0
    return Row(
        LABEL,
        f"seed {report.seed}: accepted → delivered · cancelled · failed aloud ({report.timings['total_s']:.0f} s)",
        f"{c['accepted']} → {c['delivered']} · {c['cancelled']} · {c['failed_aloud']}",
        f"lost {c['lost']}, duplicated {c['duplicated']}",
        target="lost 0, dup 0",
        ok=clean and c["accepted"] == c["delivered"] + c["cancelled"] + c["failed_aloud"],
    )


async def run(model: Path, workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    section = Section("soak")
    reports: list[SoakReport] = []
    for index in range(plan.runs):
        soak = dataclasses.replace(plan.soak, seed=plan.first_seed + index)
        log(
            f"soak: run {index + 1}/{plan.runs}, seed {soak.seed}: {soak.jobs} jobs from {soak.members} members, "
            f"{soak.kills} kill -9s, {soak.gateway_drops} gateway drop, {soak.fault_count} injected 429/5xx"
        )
        report = await run_soak(soak, model, workdir / f"soak-{soak.seed}")
        log(f"soak: {report.summary()}")
        reports.append(report)
        section.rows.append(_row(report))
        for line in report.problems:
            section.notes.append(f"soak seed {soak.seed}: {line}")
    totals = {key: sum(r.counts[key] for r in reports) for key in reports[0].counts}
    section.rows.append(
        Row(
            LABEL,
            f"all {len(reports)} runs: lost / duplicated of {totals['accepted']} accepted",
            f"{totals['lost']} / {totals['duplicated']}",
            target="0 / 0",
            ok=totals["lost"] == 0 and totals["duplicated"] == 0,
        )
    )
    section.figures = {
        "runs": [report.as_dict() for report in reports],
        "totals": totals,
    }
    section.notes.append(_how(plan.soak, reports))
    return section


def _how(soak: SoakPlan, reports: list[SoakReport]) -> str:
    faults: dict[str, Any] = {}
    for report in reports:
        for key, hits in report.faults.items():
            faults[key] = faults.get(key, 0) + hits
    served = sum(faults.values())
    return (
        f"Soak: python -m bot run against the fake Discord, {soak.jobs} job-making interactions per run (/imagine, "
        f"refine forms, re-rolls) from {soak.members} members every ~{soak.pace:.2f} s, some cancelled with the "
        f"Cancel button; {served} injected 429/5xx answers served over the runs on the interaction edit, channel "
        f"post and channel edit routes, {soak.refusals} 403 on a grid per run, {soak.gateway_drops} gateway drop and "
        f"{soak.kills} kill -9s per run (each followed by a restart on the same database). 'Accepted' counts "
        "interactions the bot acknowledged; those sent while it was dead are counted apart (the JSON's "
        "'interactions'). Delivered = exactly one message carries the job's grid; cancelled / failed aloud = the "
        "store says so and the job's message (or the admin's log) says so too; lost = none of these."
    )
