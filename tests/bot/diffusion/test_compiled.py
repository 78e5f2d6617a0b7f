"""Compile without surprises: after the warm-up no job of any reachable shape compiles (dynamo's own counters).

The backend is dynamo's capture-only ``eager`` (inductor would spend minutes generating C++ on two
cores); what is tested is seedgrid's part: static shapes, which shapes are warmed, the seal, the
stance, and that the images are those of the eager pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.config import ModelSettings
from bot.diffusion.compiled import StaticCompiled, compile_counters, compiled_parts, signature, use_cache
from bot.diffusion.pipeline import WARM_BATCHES, Pipeline
from bot.jobs import GenParams, Tile

SIZES = [(64, 64)]


def params(tiles: int, width: int = 64, height: int = 64, guidance: float = 7.5) -> GenParams:
    return GenParams(
        tiles=tuple(Tile("a red fox", 40 + i) for i in range(tiles)),
        negative="",
        steps=2,
        guidance=guidance,
        width=width,
        height=height,
    )


def pixels(pipeline: Pipeline, job: GenParams) -> np.ndarray:
    return np.stack([np.asarray(im, dtype=np.int16) for im in pipeline.generate(job).images])


@pytest.fixture(scope="module")
def compiled(tiny_model: Path) -> Pipeline:
    settings = ModelSettings(id=str(tiny_model), device="cpu", compile=True, compile_backend="eager")
    pipeline = Pipeline.load(settings)
    before = compile_counters()
    pipeline.warm_up(SIZES)
    warmed = compile_counters()
    # every size × 1-4 tiles × guidance on/off: UNet batches 1,2,3,4,6,8 and decoder batches 1-4, per size
    # (fewer new graphs when an earlier test compiled the same class at some of these shapes: dynamo
    # reuses a graph across instances, the weights being its inputs)
    assert 0 < warmed["graphs"] - before["graphs"] <= len(SIZES) * (6 + 4)
    assert warmed["graph_breaks"] == before["graph_breaks"]  # fullgraph
    return pipeline


@pytest.fixture(scope="module")
def eager(tiny_model: Path) -> Pipeline:
    return Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu"))


def test_compiled_parts_are_the_unet_and_the_vae_decoder(compiled: Pipeline) -> None:
    parts = {part.label: part for part in compiled_parts(compiled._pipe)}
    assert set(parts) == {"unet", "vae.decoder"}
    assert all(part.sealed for part in parts.values())
    assert parts["unet"].shapes == len(SIZES) * 6
    assert parts["vae.decoder"].shapes == len(SIZES) * len(WARM_BATCHES)
    assert all(seconds >= 0 for seconds in parts["unet"].compile_seconds.values())
    assert "channels_last" in compiled.info.speed  # unset channels_last: on with compile


def test_no_reachable_job_compiles_after_warm_up(compiled: Pipeline) -> None:
    before = compile_counters()
    eager_calls = sum(part.eager_calls for part in compiled_parts(compiled._pipe))
    for width, height in SIZES:
        for tiles in (1, 2, 3, 4):
            for guidance in (7.5, 1.0, 0.0, 12.0):
                compiled.generate(params(tiles, width, height, guidance))
    assert compile_counters() == before
    assert sum(part.eager_calls for part in compiled_parts(compiled._pipe)) == eager_calls  # all ran compiled


def test_an_unforeseen_shape_runs_eagerly_without_compiling(compiled: Pipeline, eager: Pipeline) -> None:
    before = compile_counters()
    job = params(5, 128, 64)  # neither the size nor the batch was warmed up
    images = pixels(compiled, job)
    assert compile_counters() == before
    assert sum(part.eager_calls for part in compiled_parts(compiled._pipe)) > 0
    assert np.abs(images - pixels(eager, job)).max() <= 3


def test_compiled_matches_eager_and_batch_matches_solo(compiled: Pipeline, eager: Pipeline) -> None:
    grid = pixels(compiled, params(4))
    assert np.abs(grid - pixels(eager, params(4))).max() <= 3
    solo = pixels(compiled, params(1))
    assert np.abs(grid[0] - solo[0]).max() <= 3


def test_the_stance_forbids_recompiles_once_sealed(compiled: Pipeline) -> None:
    """A guard the signature does not cover (grad mode here) runs eagerly instead of recompiling."""
    part = next(part for part in compiled_parts(compiled._pipe) if part.label == "vae.decoder")
    latents = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        part(latents)
    before = compile_counters()
    with torch.enable_grad():
        part(latents)  # a warmed signature, but a guard (grad mode) fails: eager, not a recompile
    assert compile_counters() == before


def test_signature_covers_shape_dtype_and_values() -> None:
    a = torch.zeros(2, 4, 8, 8)
    assert signature((a,), {"t": 1}) == signature((torch.ones(2, 4, 8, 8),), {"t": 1})
    assert signature((a,), {}) != signature((torch.zeros(3, 4, 8, 8),), {})
    assert signature((a,), {}) != signature((a.half(),), {})
    assert signature((a,), {}) != signature((a.to(memory_format=torch.channels_last),), {})
    assert signature((a,), {"return_dict": False}) != signature((a,), {"return_dict": True})


def test_a_compiled_module_keeps_its_attributes() -> None:
    linear = torch.nn.Linear(4, 4)
    wrapper = StaticCompiled(linear, "linear", {"backend": "eager"})
    assert linear.forward is wrapper
    x = torch.randn(3, 4)
    assert torch.equal(linear(x), torch.nn.functional.linear(x, linear.weight, linear.bias))
    wrapper.seal()
    assert linear(torch.randn(5, 4)).shape == (5, 4)  # not warmed: eagerly
    assert torch.equal(linear(x), torch.nn.functional.linear(x, linear.weight, linear.bias))
    assert wrapper.eager_calls == 1 and wrapper.shapes == 1


def test_compile_cache_points_inductor_at_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    folder = use_cache(str(tmp_path / "cache"))
    assert Path(folder).is_dir()
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    assert cache_dir() == folder == os.environ["TORCHINDUCTOR_CACHE_DIR"]
