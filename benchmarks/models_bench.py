"""Figure 10: switching models on one device, on CPU with the tiny pipelines of the test suite.

A device's :class:`bot.diffusion.shelf.Shelf` serves two configured models, the tiny SD 1.x model and
the tiny FLUX.1 [schnell] model (``tests/families``), through the real loader (``Pipeline.load``).
Measured, each a median of ``rounds``: a FLUX job (a plain 4-tile grid, 2 steps) right after another
FLUX job, and the same job right after an SD job — with ``memory_budget = 0`` (the device unloads SD
and loads FLUX again) and with a budget that holds both (no load at all after the first).
The tiny models load in a fraction of a second; a real model's switch is its load time (seconds to
minutes, mostly reading weights), which the log reports per load.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import Row, Section, ms


@dataclass(frozen=True)
class Plan:
    rounds: int = 10


QUICK = Plan(rounds=3)


def run(workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    from bot.config import ModelSettings
    from bot.diffusion.pipeline import Pipeline
    from bot.diffusion.shelf import Shelf
    from bot.jobs import GenParams, Tile
    from tests.families.flux import build_flux_schnell
    from tests.tiny_model import build_tiny_pipeline

    folders = {
        "sd": build_tiny_pipeline(workdir / "models-sd"),
        "flux": build_flux_schnell(workdir / "models-flux"),
    }
    models = {name: ModelSettings(id=str(folder), device="cpu") for name, folder in folders.items()}
    jobs = {
        name: GenParams(tiles=tuple(Tile("a lighthouse", s) for s in range(4)), negative="", steps=2,
                        guidance=7.5 if name == "sd" else 0.0, width=64, height=64)
        for name in models
    }  # fmt: skip

    def timed(shelf: Shelf, name: str) -> float:
        start = time.perf_counter()
        shelf.get(name).generate(jobs[name])
        return time.perf_counter() - start

    section = Section("models")
    figures: dict[str, dict[str, float]] = {}
    for label, budget in (("one at a time", 0.0), ("both held", 1.0)):
        log(f"models: alternating sd and flux jobs, memory_budget {budget} GiB ({label})")
        shelf = Shelf(models, Pipeline.load, budget_gib=budget)
        timed(shelf, "sd"), timed(shelf, "flux")  # first loads, imports, caches
        same = [timed(shelf, "flux") for _ in range(plan.rounds)]
        switch = []
        for _ in range(plan.rounds):  # the same flux job, each time right after an sd job
            timed(shelf, "sd")
            switch.append(timed(shelf, "flux"))
        figures[label] = {"same_model_s": statistics.median(same), "after_switch_s": statistics.median(switch)}
    one, both = figures["one at a time"], figures["both held"]
    section.rows.append(
        Row("models", "job after a model switch, budget 0 (tiny, CPU)", ms(one["after_switch_s"]),
            f"{ms(one['same_model_s'])} same model", f"{one['after_switch_s'] / one['same_model_s']:.1f}×")
    )  # fmt: skip
    section.rows.append(
        Row("models", "job after a model switch, both held (tiny, CPU)", ms(both["after_switch_s"]),
            f"{ms(both['same_model_s'])} same model", f"{both['after_switch_s'] / both['same_model_s']:.1f}×")
    )  # fmt: skip
    section.figures = {"rounds": plan.rounds, **figures}
    section.notes.append(
        "models: a switch with memory_budget 0 costs one model load (unload + from_pretrained + placement); "
        "with a budget that holds both models it costs nothing"
    )
    return section
