"""The engine (``bot/engine/engine.py``) on the tiny model: state in the store, files in the output folder."""

import json
from pathlib import Path

from PIL import Image

from bot.config import parse_settings
from bot.engine import Done, Engine
from bot.imaging.recipe import parse_parameters, read_recipe, read_text_chunks
from bot.inputs import imagine_request
from bot.jobs import JobStatus
from tests.conftest import config_text
from tests.presets import preset_of


async def test_a_job_is_stored_run_recorded_and_saved(tiny_model: Path, tmp_path: Path) -> None:
    settings = parse_settings(config_text(tiny_model, tmp_path / "db.sqlite", output_dir=tmp_path / "out"))
    engine = await Engine.open(settings)
    try:
        assert engine.info is not None and engine.info.device == "cpu"
        request = imagine_request(preset_of(settings), prompt="a red fox", seed=7, steps=2, user_id=3)
        handle = await engine.submit(request)
        outcome = await handle.wait()
        assert isinstance(outcome, Done)
        await engine.drain()
        job = await engine.job(handle.job.id)
        assert job is not None and job.status is JobStatus.DONE
        # the recipe is in the grid and kept in the store, found by the job and by its message
        recipe = read_recipe(outcome.result.grid_png)
        assert recipe is not None and await engine.recipe(job.id) == recipe
        await engine.set_message(job.id, 555)
        assert await engine.recipe_of_message(555) == (job.id, recipe)
        assert await engine.recipe_of_message(556) is None
        assert await engine.tile_recipe(job, 2) == recipe.tile(2)
        assert await engine.tile_recipe(job, 5) is None
        # a grid from before recipes were kept (none stored): its tile's recipe is rebuilt from the request
        older = await engine.create(request)
        rebuilt = await engine.tile_recipe(older, 3)
        assert rebuilt is not None and rebuilt.tiles == recipe.tile(3).tiles and rebuilt.family == "sd1"
    finally:
        await engine.close()

    folder = tmp_path / "out" / f"job-{handle.job.id:06d}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "grid.png",
        "params.json",
        "tile-1.png",
        "tile-2.png",
        "tile-3.png",
        "tile-4.png",
    ]
    assert (folder / "grid.png").read_bytes() == outcome.result.grid_png
    with Image.open(folder / "grid.png") as grid:
        assert grid.size == (128, 128)
    params = json.loads((folder / "params.json").read_text())
    assert [t["seed"] for t in params["tiles"]] == [7, 8, 9, 10]
    assert params["request"]["prompt"] == "a red fox"
    # every PNG carries its recipe: the grid lists the four seeds, each tile its own
    assert recipe.kind == "imagine" and recipe.family == "sd1" and recipe.model_id == str(tiny_model)
    assert [t.seed for t in recipe.tiles] == [7, 8, 9, 10] and recipe.steps == 2
    grid_text = parse_parameters(read_text_chunks((folder / "grid.png").read_bytes())["parameters"])
    assert grid_text.prompt == "a red fox" and grid_text.settings["Tile seeds"] == "7, 8, 9, 10"
    for index in range(1, 5):
        tile = read_recipe((folder / f"tile-{index}.png").read_bytes())
        assert tile == recipe.tile(index) and tile.tiles[0].seed == 6 + index
