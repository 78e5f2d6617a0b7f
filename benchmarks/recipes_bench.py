"""Figure 11: what U1-U4 and Vary cost next to a plain grid, and what a recipe adds to a PNG.

One engine (``Engine.open(settings)``, the tiny SD 1.x model of the test suite, CPU), one run, each job a
median of ``rounds``: a plain 4-tile grid (``small`` 64², ``steps`` steps), the upscale of its tile 1
(``[upscale]`` defaults: 2× → 128², strength 0.35; the source tile is drawn again first, then the
image-to-image pass) and a Vary (strong) of that tile (four 64² image-to-image passes at 0.75, after the
source tile is drawn again). Times are the job's wall time through ``Engine.submit`` (queue, render, PNG
encoding) and the pipeline's own time (``JobResult.elapsed``).

The recipe's cost in bytes: the ``parameters`` and ``seedgrid`` text chunks of the grid's PNG and of one tile's
(12 bytes of chunk framing each, plus keyword and text), against the whole file. The tiny model draws noise,
which compresses badly, so its PNGs are larger than a real model's: the overhead in % is a lower bound.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._common import Row, Section, ms, settings_text

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.jobs import JobRequest


@dataclass(frozen=True)
class Plan:
    rounds: int = 5
    steps: int = 8


QUICK = Plan(rounds=1, steps=4)


def chunk_bytes(metadata: dict[str, str]) -> int:
    """What the text chunks of ``metadata`` take in a PNG: length, type and CRC (12 bytes) plus the chunk data."""
    from bot.imaging.png import text_chunk

    return sum(12 + len(text_chunk(key, value)[1]) for key, value in metadata.items())


async def _timed(engine: Engine, request: JobRequest, rounds: int) -> tuple[dict[str, float], Any]:
    walls, pipeline, result = [], [], None
    for _ in range(rounds):
        start = time.perf_counter()
        result = await (await engine.submit(request)).result()
        walls.append(time.perf_counter() - start)
        pipeline.append(result.elapsed)
    return {"wall_s": statistics.median(walls), "pipeline_s": statistics.median(pipeline)}, result


async def run(model: Path, workdir: Path, plan: Plan, log: Callable[[str], None]) -> Section:
    from bot.config import parse_settings
    from bot.engine import Engine
    from bot.engine.models import Catalogue
    from bot.imaging.recipe import read_recipe
    from bot.inputs import imagine_request, upscale_request, vary_request

    settings = parse_settings(settings_text(model, workdir / "recipes.db"))
    models = Catalogue.resolve(settings)
    preset = models.default
    engine = await Engine.open(settings, want_tiles=True, models=models)
    try:
        grid = imagine_request(preset, prompt="a lighthouse at dusk", seed=42, steps=plan.steps, size="small")
        await (await engine.submit(grid)).result()  # warm: imports, first call, the image-to-image pipeline below
        log(f"recipes: a 4-tile grid, its upscale and a Vary (strong), {plan.steps} steps, {plan.rounds} round(s)")
        grid_times, grid_result = await _timed(engine, grid, plan.rounds)
        recipe = read_recipe(grid_result.grid_png)
        assert recipe is not None
        source = recipe.tile(1)
        common: dict[str, Any] = {"preset": preset, "parent_job": grid_result.job_id, "tile_index": 1}
        upscale = upscale_request(grid, source, settings=settings.upscale, **common)
        vary = vary_request(grid, source, strength=settings.vary.strong, seed=7, **common)
        await (await engine.submit(upscale)).result()  # warm the image-to-image pipeline (from_pipe, once)
        upscale_times, upscale_result = await _timed(engine, upscale, plan.rounds)
        vary_times, _ = await _timed(engine, vary, plan.rounds)
    finally:
        await engine.close()
    upscaler_times = await _with_upscaler(model, workdir, plan, grid, source)

    grid_png = grid_result.grid_png
    tile_png = grid_result.images.pngs()[0]
    grid_chunks = chunk_bytes(recipe.metadata())
    tile_chunks = chunk_bytes(recipe.tile(1).metadata())
    upscale_recipe = read_recipe(upscale_result.grid_png)
    assert upscale_recipe is not None
    upscale_chunks = chunk_bytes(upscale_recipe.metadata())
    section = Section("recipes")
    base = grid_times["wall_s"]
    for label, times in (("upscale of tile 1 (128², strength 0.35)", upscale_times),
                         (f"upscale of tile 1 by a ×4 upscaler model (256², {plan.steps} steps)", upscaler_times),
                         ("Vary (strong) of tile 1 (4 × 64², 0.75)", vary_times)):  # fmt: skip
        section.rows.append(
            Row("recipes", f"{label} (tiny, CPU)", ms(times["wall_s"]), f"{ms(base)} plain 4-tile grid",
                f"{times['wall_s'] / base:.2f}×")
        )  # fmt: skip
    for label, chunks, size in (("grid PNG (128²)", grid_chunks, len(grid_png)),
                                ("tile PNG (64²)", tile_chunks, len(tile_png)),
                                ("upscale PNG (128²)", upscale_chunks, len(upscale_result.grid_png))):  # fmt: skip
        section.rows.append(
            Row("recipes", f"recipe chunks, {label}", f"{chunks} B", f"{size} B file",
                f"{100 * chunks / size:.1f} %")
        )  # fmt: skip
    section.figures = {
        "rounds": plan.rounds,
        "steps": plan.steps,
        "grid": grid_times,
        "upscale": upscale_times,
        "vary_strong": vary_times,
        "upscaler_x4": upscaler_times,
        "upscaler_vs_grid": upscaler_times["wall_s"] / base,
        "upscale_vs_grid": upscale_times["wall_s"] / base,
        "vary_vs_grid": vary_times["wall_s"] / base,
        "png_bytes": {
            "grid": {"file": len(grid_png), "recipe_chunks": grid_chunks},
            "tile": {"file": len(tile_png), "recipe_chunks": tile_chunks},
            "upscale": {"file": len(upscale_result.grid_png), "recipe_chunks": upscale_chunks},
        },
    }
    section.notes.append(
        "recipes: an upscale and a variation first draw their source tile again from its recipe (one 64² tile), "
        "then run image-to-image for about strength × steps steps; the recipe chunks are the parameters + seedgrid "
        "text chunks (an upscale's carries its source tile's recipe too)"
    )
    return section


async def _with_upscaler(model: Path, workdir: Path, plan: Plan, grid: JobRequest, source: Any) -> dict[str, float]:
    """The same upscale with ``[upscale] model`` set: the test suite's tiny ×4 upscaler, ``steps`` steps."""
    from bot.config import parse_settings
    from bot.engine import Engine
    from bot.engine.models import Catalogue
    from bot.inputs import upscale_request
    from tests.tiny_upscaler import build_tiny_upscaler

    upscaler = build_tiny_upscaler(workdir / "tiny-upscaler")
    extra = f'[upscale]\nmodel = "{upscaler}"\nsteps = {plan.steps}\nmax_side = 512\n'
    settings = parse_settings(settings_text(model, workdir / "upscaler.db", extra=extra))
    models = Catalogue.resolve(settings)
    engine = await Engine.open(settings, want_tiles=True, models=models)
    try:
        request = upscale_request(
            grid,
            source,
            settings=settings.upscale,
            preset=models.default,
            parent_job=None,  # this database has no grid: the upscale stands alone
            tile_index=1,
            upscaler=models.upscaler,
        )
        await (await engine.submit(request)).result()  # warm: loading the upscaler onto the shelf
        times, _ = await _timed(engine, request, plan.rounds)
    finally:
        await engine.close()
    return times
