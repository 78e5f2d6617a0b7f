"""The speed options run on CPU with the tiny model, and keep a seed's image the same run after run."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from bot.config import ConfigError, ModelSettings, parse_settings
from bot.diffusion.families import SD1
from bot.diffusion.pipeline import Pipeline
from bot.diffusion.speed import apply_speed_options, check_quantize, fp8_eligible, fp8_problem
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
        {"attention": "sdpa", "fuse_qkv": True},  # fusing needs SDPA (classic stays unfused)
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
    pipeline.warm_up([(64, 64)], steps=PARAMS.steps, batches=(2,))  # every batch: tests/bot/diffusion/test_compiled.py
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
    with pytest.raises(ConfigError, match=r"^model\.quantize"):
        parse_settings('[model]\nquantize = "int4"')
    assert parse_settings('[model]\nquantize = "fp8"\ncompile_cache = "/var/cache/seedgrid"').model.quantize == "fp8"


def test_the_reported_options_are_the_applied_ones(tiny_model: Path) -> None:
    base = ModelSettings(id=str(tiny_model), device="cpu")
    assert Pipeline.load(base).info.speed == ("sdpa", "fuse_qkv")  # channels_last unset: only with compile
    assert Pipeline.load(dataclasses.replace(base, channels_last=True)).info.speed == (
        "sdpa",
        "fuse_qkv",
        "channels_last",
    )
    # the fused processor is an SDPA one: classic attention stays unfused, and says so
    classic = Pipeline.load(dataclasses.replace(base, attention="classic"))
    assert classic.info.speed == ("classic",)
    from diffusers.models.attention_processor import AttnProcessor

    assert all(isinstance(p, AttnProcessor) for p in classic._pipe.unet.attn_processors.values())


def test_fusing_drops_the_unfused_copies(tiny_model: Path) -> None:
    base = ModelSettings(id=str(tiny_model), device="cpu", fuse_qkv=False)
    unfused = Pipeline.load(base)
    fused = Pipeline.load(dataclasses.replace(base, fuse_qkv=True))
    assert fused.weight_bytes == unfused.weight_bytes  # the fused layers replace the originals, no duplicates
    names = {name.rsplit(".", 1)[-1] for name, _ in fused._pipe.unet.named_modules()}
    assert "to_qkv" in names and "to_kv" in names and "to_k" not in names and "to_v" not in names


def test_fp8_is_refused_without_an_ada_or_hopper_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fp8 = ModelSettings(quantize="fp8")
    assert fp8_problem(ModelSettings(), "cpu") is None  # off: nothing to refuse
    with pytest.raises(ConfigError, match=r'^model\.quantize = "fp8": needs a CUDA GPU .* the device is cpu'):
        check_quantize(fp8, "cpu")
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA A10")
    problem = fp8_problem(fp8, "cuda")
    assert problem is not None and "NVIDIA A10 has 8.6" in problem
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    assert 'needs dtype = "bfloat16"' in (fp8_problem(fp8, "cuda", "float16") or "")  # per-row scales: bf16
    monkeypatch.setitem(__import__("sys").modules, "torchao", None)  # not installed
    assert fp8_problem(fp8, "cuda:0") == "needs torchao (pip install 'seedgrid[fp8]')"


def test_fp8_refusal_comes_before_the_weights_are_read(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"^model\.quantize"):
        Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu", quantize="fp8"))


def test_fp8_quantizes_the_denoisers_linear_layers_per_row(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration torchao gets (where torchao is installed) and the layers it gets it for.

    torchao itself refuses float8 below compute capability 8.9, so on CPU its ``quantize_`` is
    replaced by a recorder; the GPU run (benchmarks/gpu.py) quantizes for real.
    """
    import torch

    assert fp8_eligible(torch.nn.Linear(64, 128), "x")
    assert not fp8_eligible(torch.nn.Linear(64, 100), "x")  # float8 matmuls need multiples of 16
    assert not fp8_eligible(torch.nn.Conv2d(64, 64, 3), "x")
    quantization = pytest.importorskip("torchao.quantization")
    from bot.diffusion.speed import fp8_config

    config = fp8_config()
    assert type(config).__name__ == "Float8DynamicActivationFloat8WeightConfig"
    granularity = config.granularity if isinstance(config.granularity, list | tuple) else [config.granularity]
    assert all(isinstance(g, quantization.PerRow) for g in granularity)  # per token: batch ≡ solo
    calls: list[tuple[object, object, object]] = []
    monkeypatch.setattr(quantization, "quantize_", lambda model, cfg, filter_fn: calls.append((model, cfg, filter_fn)))
    pipeline = Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu", fuse_qkv=False))
    applied = apply_speed_options(pipeline._pipe, ModelSettings(quantize="fp8", fuse_qkv=False), SD1, offload=False)
    assert applied == ("sdpa", "fp8(unet, per-row)")
    [(model, cfg, filter_fn)] = calls
    assert model is pipeline._pipe.unet and filter_fn is fp8_eligible
    assert type(cfg) is type(config)
