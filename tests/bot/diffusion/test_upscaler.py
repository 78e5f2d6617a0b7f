"""The dedicated upscaler (``[upscale] model``): its kind from the model index, its settings, and the renderer
drawing an upscale with it (the tiny ×4 upscaler of :mod:`tests.tiny_upscaler`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bot.config import ConfigError, ModelSettings, parse_settings
from bot.diffusion.renderer import PipelineRenderer
from bot.diffusion.shelf import UPSCALER
from bot.diffusion.upscaler import NotAnUpscalerError, upscaler_kind
from bot.engine.models import Catalogue, resolve_upscaler
from bot.imaging.recipe import Recipe, read_recipe
from bot.inputs import UserInputError, request_from_recipe, upscale_request
from bot.jobs import Job, JobKind, JobRequest, Tile
from tests.conftest import config_text
from tests.presets import preset_of


def index(folder: Path, class_name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name}), encoding="utf-8")
    return str(folder)


def test_the_kind_and_factor_come_from_the_pipeline_class(tmp_path: Path, tiny_upscaler: Path) -> None:
    assert upscaler_kind(str(tiny_upscaler)) == ("StableDiffusionUpscalePipeline", 4)
    # the name says x4, the class says latent (×2): the class wins
    assert upscaler_kind(index(tmp_path / "x4-upscaler", "StableDiffusionLatentUpscalePipeline"))[1] == 2
    with pytest.raises(NotAnUpscalerError, match="StableDiffusionPipeline"):
        upscaler_kind(index(tmp_path / "upscaler", "StableDiffusionPipeline"))


def settings_with(tiny_model: Path, tmp_path: Path, upscale: str) -> str:
    return config_text(tiny_model, tmp_path / "db.sqlite", extra=f"[upscale]\n{upscale}\n")


@pytest.mark.parametrize(
    ("upscale", "message"),
    [
        ("steps = 0", "upscale.steps: must be in 1..500"),
        ("guidance = 51.0", "upscale.guidance: must be in 0..50"),
        ("noise_level = 351", "upscale.noise_level: must be in 0..350"),
        ('model = " x4 "', "upscale.model: expected a Hub id or a folder without surrounding spaces"),
        ("model = 4", "upscale.model: expected string"),
    ],
)
def test_config_errors_name_the_key(tiny_model: Path, tmp_path: Path, upscale: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(settings_with(tiny_model, tmp_path, upscale))


def test_a_model_that_is_not_an_upscaler_stops_start_up(tiny_model: Path, tmp_path: Path) -> None:
    settings = parse_settings(settings_with(tiny_model, tmp_path, f'model = "{tiny_model}"'))
    with pytest.raises(ConfigError, match=r"upscale.model: .* is not an upscaler: .*StableDiffusionPipeline"):
        resolve_upscaler(settings)
    missing = parse_settings(settings_with(tiny_model, tmp_path, f'model = "{tmp_path / "nowhere"}"'))
    with pytest.raises(ConfigError, match=r"upscale\.model: cannot read the model index"):
        resolve_upscaler(missing)
    assert resolve_upscaler(parse_settings(settings_with(tiny_model, tmp_path, ""))) is None


def test_the_renderer_upscales_4x_the_same_bytes_twice(tiny_model: Path, tiny_upscaler: Path, tmp_path: Path) -> None:
    text = settings_with(tiny_model, tmp_path, f'model = "{tiny_upscaler}"\nsteps = 2\nguidance = 7.0')
    settings = parse_settings(text)
    upscaler = resolve_upscaler(settings)
    assert upscaler is not None and upscaler.factor == 4 and upscaler.load.device == "cpu"
    renderer = PipelineRenderer.load(
        {"model": ModelSettings(id=str(tiny_model), device="cpu")},
        safety_checker=False,
        upscaler=upscaler.load,
        memory_budget=1.0,
    )
    preset = preset_of(settings)
    parent = JobRequest(
        kind=JobKind.IMAGINE, prompt="a lighthouse", negative="fog", seed=11, steps=2, guidance=7.5, width=64, height=64
    )
    source = Recipe.of(parent, family=preset.family.name, scheduler="").tile(2)
    request = upscale_request(
        parent, source, preset=preset, settings=settings.upscale, parent_job=None, tile_index=2, upscaler=upscaler
    )
    assert (request.width, request.height, request.steps, request.guidance) == (256, 256, 2, 7.0)
    assert request.upscaler == str(tiny_upscaler) and request.noise_level == 20 and request.strength == 0

    first = renderer.render(Job(1, request), lambda n, s: None, lambda: False)
    again = renderer.render(Job(1, request), lambda n, s: None, lambda: False)
    assert first.grid_png == again.grid_png
    assert Image.open(io.BytesIO(first.grid_png)).size == (256, 256)
    assert renderer.shelf.loaded == ("model",) and UPSCALER in renderer.shelf._loaded  # on the shelf, not a model

    # the recipe names the upscaler, and reproduces (the same bytes) only where that upscaler is configured
    recipe = read_recipe(first.grid_png)
    assert recipe is not None and recipe.upscaler == str(tiny_upscaler) and recipe.noise_level == 20
    assert recipe.strength is None and "Hires upscaler: " in recipe.parameters()
    assert Recipe.from_json(recipe.to_json()) == recipe
    again_request = request_from_recipe(recipe, Catalogue((preset,), upscaler=upscaler), max_side=2048)
    assert renderer.render(Job(1, again_request), lambda n, s: None, lambda: False).grid_png == first.grid_png
    with pytest.raises(UserInputError) as refused:
        request_from_recipe(recipe, Catalogue((preset,)), max_side=2048)
    assert refused.value.text.key == "input.recipe_upscaler"


def test_old_recipes_without_an_upscaler_are_the_hires_pass() -> None:
    recipe = Recipe(
        kind="upscale",
        model="m",
        model_id="m",
        family="sd1",
        scheduler="",
        negative="",
        steps=2,
        guidance=7.5,
        width=128,
        height=128,
        tiles=(Tile("a", 1),),
        strength=0.35,
        source=Recipe(
            kind="imagine",
            model="m",
            model_id="m",
            family="sd1",
            scheduler="",
            negative="",
            steps=2,
            guidance=7.5,
            width=64,
            height=64,
            tiles=(Tile("a", 1),),
        ),
    )
    data = recipe.to_dict()
    assert "upscaler" not in data and "noise_level" not in data  # the JSON of a hires upscale is as before
    assert Recipe.from_dict(data).upscaler == "" and Recipe.from_dict(data).noise_level is None
