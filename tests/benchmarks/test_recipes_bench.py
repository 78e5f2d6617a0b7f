"""``python -m benchmarks --only recipes`` at its quick size: grid vs upscale (hires and a ×4 upscaler model) vs vary,
and the recipe's bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import recipes_bench


@pytest.mark.benchmark
async def test_the_recipes_benchmark_runs(tiny_model: Path, tmp_path: Path) -> None:
    section = await recipes_bench.run(tiny_model, tmp_path, recipes_bench.Plan(rounds=1, steps=2), lambda _: None)
    figures = section.figures
    assert figures["upscale_vs_grid"] > 0 and figures["vary_vs_grid"] > 0
    for kind in ("grid", "tile", "upscale"):
        sizes = figures["png_bytes"][kind]
        assert 0 < sizes["recipe_chunks"] < sizes["file"]
    assert figures["png_bytes"]["upscale"]["recipe_chunks"] > figures["png_bytes"]["tile"]["recipe_chunks"]
    assert [row.benchmark for row in section.rows] == ["recipes"] * 6
    assert figures["upscaler_x4"]["wall_s"] > 0  # the same upscale by a dedicated ×4 upscaler model
