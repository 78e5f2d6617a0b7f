"""Upscale and vary on the tiny model (``bot/diffusion/renderer.py``, ``bot/inputs.py``): a tile drawn again from
its recipe, enlarged, redrawn by image-to-image on its seed; four variations in one batched call; every result
reproducible from the request, and its PNG carrying the chain of recipes."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import ModelSettings, UpscaleSettings
from bot.diffusion.families import PIXART_SIGMA
from bot.diffusion.pipeline import Pipeline
from bot.diffusion.renderer import PipelineRenderer
from bot.imaging.recipe import MAX_DEPTH, Recipe, parse_parameters, read_recipe, read_text_chunks
from bot.inputs import UserInputError, imagine_request, refine_request, upscale_request, vary_request
from bot.jobs import Job, JobKind, JobRequest, JobResult, Tile
from tests.presets import SD15

SMALL = dataclasses.replace(SD15, steps=3)


@pytest.fixture(scope="module")
def renderer(tiny_model: Path) -> PipelineRenderer:
    return PipelineRenderer(Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu")))


def run(renderer: PipelineRenderer, request: JobRequest, job_id: int = 1) -> JobResult:
    return renderer.render(Job(job_id, request), lambda n, total: None, lambda: False)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def grid(renderer: PipelineRenderer) -> tuple[JobRequest, JobResult]:
    request = imagine_request(SMALL, prompt="a lighthouse at dusk", seed=40, size="square")
    request = dataclasses.replace(request, width=64, height=64, model="")  # the renderer's one model
    return request, run(renderer, request)


def upscale_of(grid: tuple[JobRequest, JobResult], tile: int = 2) -> JobRequest:
    request, result = grid
    source = read_recipe(result.grid_png)
    assert source is not None
    return upscale_request(
        request, source.tile(tile), preset=SMALL, settings=UpscaleSettings(), parent_job=1, tile_index=tile
    )


def test_an_upscale_is_the_tile_alone_at_twice_its_size(
    renderer: PipelineRenderer, grid: tuple[JobRequest, JobResult]
) -> None:
    request = upscale_of(grid)
    assert (request.kind, request.seed, request.width, request.height) == (JobKind.UPSCALE, 41, 128, 128)
    steps: list[tuple[int, int]] = []
    result = renderer.render(Job(2, request), lambda n, total: steps.append((n, total)), lambda: False)
    assert Image.open(io.BytesIO(result.grid_png)).size == (128, 128)
    assert result.tiles == (Tile("a lighthouse at dusk", 41),)
    assert steps and steps[-1] == (3, 3)  # the member's steps, whatever the strength runs
    # the recipe: an upscale of tile 2, its source the tile's own recipe
    recipe = read_recipe(result.grid_png)
    assert recipe is not None and recipe.kind == "upscale" and recipe.strength == 0.35
    assert recipe.source is not None and recipe.source.tiles == (Tile("a lighthouse at dusk", 41),)
    assert (recipe.parent_job, recipe.parent_tile, recipe.source.width) == (1, 2, 64)
    text = parse_parameters(read_text_chunks(result.grid_png)["parameters"])
    assert text.settings["Seed"] == "41" and text.settings["Size"] == "128x128"
    assert text.settings["Denoising strength"] == "0.35" and text.settings["Hires upscale"] == "2"
    # drawn again from the same request: the same bytes
    assert run(renderer, request, 2).grid_png == result.grid_png
    # the hires pass starts from the tile: at low strength it keeps the tile's picture
    tile = np.asarray(grid[1].images.images()[1].resize((128, 128), Image.Resampling.LANCZOS), dtype=np.int16)
    other = np.asarray(grid[1].images.images()[0].resize((128, 128), Image.Resampling.LANCZOS), dtype=np.int16)
    upscaled = pixels(result.grid_png)
    assert np.abs(upscaled - tile).mean() < np.abs(upscaled - other).mean()


def test_vary_subtle_and_strong_give_new_reproducible_grids(
    renderer: PipelineRenderer, grid: tuple[JobRequest, JobResult]
) -> None:
    upscale = upscale_of(grid, 3)
    upscaled = run(renderer, upscale, 2)
    source = read_recipe(upscaled.grid_png)
    assert source is not None
    grids = {}
    for name, strength in (("subtle", 0.4), ("strong", 0.75)):
        request = vary_request(upscale, source, preset=SMALL, strength=strength, parent_job=2, tile_index=1, seed=500)
        assert request.kind is JobKind.VARY and request.strength == strength
        result = run(renderer, request, 3)
        assert Image.open(io.BytesIO(result.grid_png)).size == (256, 256)  # four 128² tiles
        assert [t.seed for t in result.tiles] == [500, 501, 502, 503]
        tiles = [pixels(png) for png in result.images.pngs()]
        assert len({t.tobytes() for t in tiles}) == 4
        recipe = read_recipe(result.grid_png)
        assert recipe is not None and recipe.depth == 2 and recipe.source == source  # vary ← upscale ← tile
        assert run(renderer, request, 3).grid_png == result.grid_png
        grids[name] = tiles
    assert grids["subtle"][0].tobytes() != grids["strong"][0].tobytes()
    # subtle stays closer to the upscale it came from than strong does
    start = pixels(upscaled.grid_png)
    subtle = np.mean([np.abs(t - start).mean() for t in grids["subtle"]])
    strong = np.mean([np.abs(t - start).mean() for t in grids["strong"]])
    assert subtle < strong


def test_refining_an_upscale_keeps_its_source(renderer: PipelineRenderer, grid: tuple[JobRequest, JobResult]) -> None:
    upscale = upscale_of(grid, 1)
    refined = refine_request(
        upscale, parent_job=2, tile_index=1, tile=Tile(upscale.prompt, upscale.seed), suffixes=(", at night",)
    )
    assert refined.source == upscale.source and (refined.width, refined.strength) == (128, 0.35)
    result = run(renderer, refined, 4)
    assert Image.open(io.BytesIO(result.grid_png)).size == (128, 128)
    recipe = read_recipe(result.grid_png)
    assert recipe is not None and recipe.kind == "refine" and recipe.tiles[0].prompt.endswith(", at night")


def test_bad_requests_are_refused_with_a_reason(grid: tuple[JobRequest, JobResult]) -> None:
    request, result = grid
    source = read_recipe(result.grid_png)
    assert source is not None
    with pytest.raises(UserInputError, match=r"256×256 pixels; this server allows at most 200"):
        upscale_request(
            request, source.tile(1), preset=SMALL, settings=UpscaleSettings(factor=4, max_side=200), parent_job=1,
            tile_index=1,
        )  # fmt: skip
    pixart = dataclasses.replace(SMALL, family=PIXART_SIGMA)
    with pytest.raises(UserInputError, match="cannot draw from an image"):
        vary_request(request, source.tile(1), preset=pixart, strength=0.5, parent_job=1, tile_index=1)
    deep = source.tile(1)
    for _ in range(MAX_DEPTH):
        deep = dataclasses.replace(deep, kind="vary", strength=0.5, source=deep)
    with pytest.raises(UserInputError, match="steps from its grid"):
        vary_request(request, deep, preset=SMALL, strength=0.5, parent_job=1, tile_index=1)
    with pytest.raises(ValueError, match="needs the recipe of its source tile"):
        dataclasses.replace(request, kind=JobKind.VARY)
    with pytest.raises(ValueError, match="strength must be in"):
        dataclasses.replace(request, kind=JobKind.VARY, source=Recipe.to_json(source), strength=0)
