"""The speed options run on CPU with the tiny model, and keep a seed's image the same run after run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, ModelSettings, parse_settings
from bot.diffusion.pipeline import Pipeline
from bot.jobs import GenParams, Tile

PARAMS = GenParams(
    tiles=(Tile("a red fox", 11), Tile("a red fox", 12)), negative="", steps=3, guidance=7.5, width=64, height=64
)


def pixels(pipeline: Pipeline) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in pipeline.generate(PARAMS).images])


@pytest.fixture(scope="module")
def plain(tiny_model: Path) -> np.ndarray:
    settings = ModelSettings(id=str(tiny_model), device="cpu", attention="classic", channels_last=False, fuse_qkv=False)
    pipeline = Pipeline.load(settings)
    assert pipeline.info.speed == ("classic",)
    return pixels(pipeline)


@pytest.mark.parametrize(
    "options",
    [
        {"attention": "sdpa"},
        {"channels_last": True},
        {"fuse_qkv": True},
        {"attention": "sdpa", "channels_last": True, "fuse_qkv": True},
    ],
)
def test_each_option_runs_and_is_reproducible(tiny_model: Path, plain: np.ndarray, options: dict[str, object]) -> None:
    base = ModelSettings(id=str(tiny_model), device="cpu", attention="classic", channels_last=False, fuse_qkv=False)
    pipeline = Pipeline.load(dataclasses.replace(base, **options))  # type: ignore[arg-type]
    first, second = pixels(pipeline), pixels(pipeline)
    assert np.array_equal(first, second)  # same seed, same image, run after run
    assert np.abs(first - plain).max() <= 3  # the same picture, up to float rounding


def test_compile_warms_up_and_matches(tiny_model: Path, plain: np.ndarray) -> None:
    """The compile path end to end (wrapping, warm-up, reproducibility) with dynamo's capture-only backend.

    inductor itself generates C++ on CPU and takes about two minutes for the tiny model on two
    cores, too long for every CI run; benchmarks/gpu.py exercises it on a GPU.
    """
    settings = ModelSettings(id=str(tiny_model), device="cpu", compile=True, compile_backend="eager")
    pipeline = Pipeline.load(settings)
    assert any(option.startswith("compile(unet, eager") for option in pipeline.info.speed)
    started = time.perf_counter()
    pipeline.warm_up([(64, 64)], steps=PARAMS.steps)
    print(f"\ntorch.compile warm-up of the tiny model on CPU: {time.perf_counter() - started:.1f} s")
    first, second = pixels(pipeline), pixels(pipeline)
    assert np.array_equal(first, second)
    assert np.abs(first - plain).max() <= 3


def test_bad_speed_options_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^model\.attention"):
        parse_settings('[model]\nattention = "flash"')
    with pytest.raises(ConfigError, match=r"^model\.compile_mode"):
        parse_settings('[model]\ncompile_mode = "fast"')
    with pytest.raises(ConfigError, match=r"^model\.compile_backend"):
        parse_settings('[model]\ncompile_backend = "tensorrt"')
