"""``python -m benchmarks [--quick] [--out PATH] [--only NAME,...]``: the CPU suite; a table and a JSON file.

Names: ack (1), lag (2), overhead (3), fairness (4), batching (5), memory (6), redis (7), soak (8),
metrics (9), models (10), recipes (11).
ack and lag come from the same run (the naive bot runs alongside them); overhead shares seedgrid's
process with them. redis needs ``redis-server`` on PATH (without it: a row saying so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from benchmarks._common import ROOT, Row, Section, build_model, describe_machine, machine, table

NAMES = ("ack", "lag", "overhead", "fairness", "batching", "memory", "redis", "soak", "metrics", "models", "recipes")
DEFAULT_OUT = ROOT / "benchmarks" / "results.json"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _names(text: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(NAMES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(NAMES)}")
    return names


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


async def _guarded(name: str, work: Awaitable[list[Section]]) -> list[Section]:
    """One benchmark's sections; a failure becomes a section with the error, and the suite goes on."""
    started = time.perf_counter()
    try:
        sections = await work
    except Exception as exc:
        _log(f"{name}: FAILED: {exc!r}")
        traceback.print_exc()
        failed = Section(name)
        failed.rows.append(Row(name, "FAILED", type(exc).__name__, ok=False))
        failed.notes.append(f"{name} failed: {exc!r}")
        failed.figures = {"error": repr(exc)}
        sections = [failed]
    for section in sections:
        section.seconds = section.seconds or time.perf_counter() - started
    return sections


async def _one(section: Awaitable[Section]) -> list[Section]:
    return [await section]


async def _suite(want: set[str], quick: bool, workdir: Path) -> list[Section]:
    from benchmarks import (
        discord_bench,
        engine_bench,
        memory_bench,
        metrics_bench,
        models_bench,
        recipes_bench,
        redis_bench,
        soak_bench,
    )

    model = build_model(workdir / "tiny-model")
    sections: list[Section] = []
    order = {name: i for i, name in enumerate(NAMES)}
    if want & {"ack", "lag", "overhead"}:
        plan = discord_bench.QUICK if quick else discord_bench.Plan()
        sections += await _guarded("discord", discord_bench.run(model, workdir, plan, want, _log))
    engine_plan = engine_bench.QUICK if quick else engine_bench.Plan()
    if "fairness" in want:
        _log("fairness: a heavy member's 10 jobs and a light member's one, through Engine.submit")
        sections += await _guarded("fairness", _one(engine_bench.fairness(model, workdir, engine_plan)))
    if "batching" in want:
        _log("batching: one 4-tile call vs four 1-tile calls (tiny model, 64² and 256²)")
        work = asyncio.to_thread(engine_bench.batching, model, workdir, engine_plan)
        sections += await _guarded("batching", _one(work))
    if "memory" in want:
        plan_m = memory_bench.QUICK if quick else memory_bench.Plan()
        sections += await _guarded("memory", _one(memory_bench.run(model, workdir, plan_m, _log)))
    if "redis" in want:
        plan_r = redis_bench.QUICK if quick else redis_bench.Plan()
        _log("redis: dispatch overhead per job and throughput with 1 and 2 `python -m bot worker` processes")
        sections += await _guarded("redis", _one(redis_bench.run(model, workdir, plan_r, _log)))
    if "soak" in want:
        plan_s = soak_bench.QUICK if quick else soak_bench.Plan()
        sections += await _guarded("soak", _one(soak_bench.run(model, workdir, plan_s, _log)))
    if "metrics" in want:
        plan_x = metrics_bench.QUICK if quick else metrics_bench.Plan()
        sections += await _guarded("metrics", _one(metrics_bench.run(model, workdir, plan_x, _log)))
    if "models" in want:
        plan_n = models_bench.QUICK if quick else models_bench.Plan()
        work_n = asyncio.to_thread(models_bench.run, workdir, plan_n, _log)
        sections += await _guarded("models", _one(work_n))
    if "recipes" in want:
        plan_c = recipes_bench.QUICK if quick else recipes_bench.Plan()
        sections += await _guarded("recipes", _one(recipes_bench.run(model, workdir, plan_c, _log)))
    return sorted(sections, key=lambda s: order.get(s.name, len(order)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: about a minute")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the JSON file (default {DEFAULT_OUT})")
    parser.add_argument("--only", type=_names, default=set(NAMES), metavar="NAME,...", help=", ".join(NAMES))
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    info = machine()
    _log(f"machine: {describe_machine(info)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seedgrid-bench-") as tmp:
        sections = asyncio.run(_suite(args.only, args.quick, Path(tmp)))
    total = time.perf_counter() - started
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]

    rows = [row for s in sections for row in s.rows]
    print()
    print(table(rows))
    print()
    for s in sections:
        for note in s.notes:
            print(f"- {note}")
    print(f"\nmachine: {describe_machine(info)}")
    print(f"mode: {'quick' if args.quick else 'full'}; {total:.0f} s in all")

    result = {
        "machine": info,
        "mode": "quick" if args.quick else "full",
        "seconds": total,
        "benchmarks": {
            s.name: {"figures": s.figures, "notes": s.notes, "seconds": s.seconds, "rows": [r.__dict__ for r in s.rows]}
            for s in sections
        },
        "table": table(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_jsonable(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    misses = [f"{r.benchmark}: {r.figure.strip()}" for r in rows if r.ok is False]
    if misses:
        print(f"missed targets: {'; '.join(misses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
