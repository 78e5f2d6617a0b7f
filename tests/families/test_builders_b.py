"""The tiny FLUX.1 (dev, schnell), FLUX.2 [klein], Qwen-Image and Z-Image pipelines build, load and run.

Each builder's folder is loaded the way the bot loads a model
(``diffusers.AutoPipelineForText2Image.from_pretrained``), run for 2 steps on 2 prompts with one
seeded generator per image, and must give 2 distinct, non-flat images of the requested size, the same
pixels on a repeated call, and step-end callbacks whose ``latents`` have the family's layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image

from tests.families import flux, flux2, qwenimage, zimage

PROMPTS = ("a red cat on a sofa", "a blue dog in the snow")
SEEDS = (1, 2)
STEPS = 2


@dataclass(frozen=True)
class Family:
    build: Callable[[Path], Path]
    pipeline_class: type
    tiny_size: tuple[int, int]
    wide_size: tuple[int, int]
    call_kwargs: dict[str, object] = field(default_factory=dict)
    packed_channels: int | None = None
    """Channels of the packed ``(B, tokens, C)`` latents; ``None`` when they are 4-D ``(B, C, H, W)``."""
    latent_channels: int = 16


FAMILIES = {
    "flux-dev": Family(
        flux.build_flux_dev,
        diffusers.FluxPipeline,
        flux.TINY_SIZE,
        flux.TINY_WIDE,
        {"guidance_scale": 3.5},
        packed_channels=64,
    ),
    "flux-schnell": Family(
        flux.build_flux_schnell,
        diffusers.FluxPipeline,
        flux.TINY_SIZE,
        flux.TINY_WIDE,
        {"guidance_scale": 0.0, "max_sequence_length": 256},
        packed_channels=64,
    ),
    "flux2-klein": Family(
        flux2.build_flux2_klein,
        diffusers.Flux2KleinPipeline,
        flux2.TINY_SIZE,
        flux2.TINY_WIDE,
        {"guidance_scale": 1.0},
        packed_channels=128,
        latent_channels=32,
    ),
    "qwen-image": Family(
        qwenimage.build_qwen_image,
        diffusers.QwenImagePipeline,
        qwenimage.TINY_SIZE,
        qwenimage.TINY_WIDE,
        {"true_cfg_scale": 4.0, "negative_prompt": " "},
        packed_channels=64,
    ),
    "z-image": Family(
        zimage.build_z_image,
        diffusers.ZImagePipeline,
        zimage.TINY_SIZE,
        zimage.TINY_WIDE,
        {"guidance_scale": 0.0},
    ),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, Family]:
    return request.param, FAMILIES[request.param]


@pytest.fixture(scope="module")
def pipe(family: tuple[str, Family], tmp_path_factory: pytest.TempPathFactory) -> diffusers.DiffusionPipeline:
    name, fam = family
    folder = fam.build(tmp_path_factory.mktemp(name) / "model")
    loaded = diffusers.AutoPipelineForText2Image.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    return loaded


def _run(pipe: diffusers.DiffusionPipeline, fam: Family, size: tuple[int, int], **kwargs: object) -> list[Image.Image]:
    width, height = size
    # Fresh lists every call: ZImagePipeline rewrites the prompt list it is given in place (chat template).
    return pipe(
        prompt=list(PROMPTS),
        generator=[torch.Generator("cpu").manual_seed(s) for s in SEEDS],
        num_inference_steps=STEPS,
        width=width,
        height=height,
        output_type="pil",
        **fam.call_kwargs,
        **kwargs,
    ).images


def _folder_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", list(FAMILIES))
def test_builder_is_deterministic_and_leaves_the_global_rng_alone(name: str, tmp_path: Path) -> None:
    build = FAMILIES[name].build
    state = torch.random.get_rng_state()
    first = build(tmp_path / "a")
    assert torch.equal(torch.random.get_rng_state(), state)
    second = build(tmp_path / "b")
    assert first == tmp_path / "a"
    assert (first / "model_index.json").is_file()
    digest = _folder_digest(first)
    assert any(key.endswith(".safetensors") for key in digest)
    assert digest == _folder_digest(second)


def test_sizes_are_multiples_of_the_pipeline_spatial_multiple(
    family: tuple[str, Family], pipe: diffusers.DiffusionPipeline
) -> None:
    _, fam = family
    multiple = pipe.vae_scale_factor * 2
    assert multiple == 16
    assert fam.tiny_size == (multiple, multiple)
    width, height = fam.wide_size
    assert width != height
    assert width % multiple == 0
    assert height % multiple == 0


def test_auto_pipeline_loads_the_family_and_runs_deterministically(
    family: tuple[str, Family], pipe: diffusers.DiffusionPipeline
) -> None:
    _, fam = family
    assert type(pipe) is fam.pipeline_class

    images = _run(pipe, fam, fam.tiny_size)
    assert len(images) == 2
    pixels = []
    for image in images:
        assert isinstance(image, Image.Image)
        assert image.size == fam.tiny_size
        assert image.mode == "RGB"
        array = np.asarray(image, dtype=np.int16)
        assert array.std() > 20, "flat image: the VAE output gain is too low"
        assert array.max() - array.min() > 128
        pixels.append(array)
    assert not np.array_equal(pixels[0], pixels[1])

    again = _run(pipe, fam, fam.tiny_size)
    for first, second in zip(pixels, again, strict=True):
        assert np.array_equal(first, np.asarray(second, dtype=np.int16))


def _unpack(pipe: diffusers.DiffusionPipeline, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The callback's latents as ``(B, C, H/8, W/8)``, with the pipeline's own helpers; checks the round trip."""
    batch = latents.shape[0]
    if isinstance(pipe, diffusers.Flux2KleinPipeline):
        # (B, tokens, 128) → (B, 128, H/16, W/16) by position ids → unpatchify → (B, 32, H/8, W/8).
        # (Still batch-normalised: the pipeline does latents * sqrt(bn.running_var + eps) + bn.running_mean
        # before unpatchifying for the VAE.)
        grid = torch.zeros(batch, latents.shape[2], height // 16, width // 16)
        ids = pipe._prepare_latent_ids(grid)
        patches = pipe._unpack_latents_with_ids(latents, ids, height // 16, width // 16)
        assert torch.equal(pipe._pack_latents(patches), latents)
        unpacked = pipe._unpatchify_latents(patches)
        assert torch.equal(pipe._patchify_latents(unpacked), patches)
        return unpacked
    if isinstance(pipe, diffusers.QwenImagePipeline):
        # (B, tokens, 64) → (B, 16, 1, H/8, W/8): a one-frame video for the Wan-style VAE.
        video = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        assert video.shape[2] == 1
        unpacked = video[:, :, 0]
        channels = unpacked.shape[1]
        assert torch.equal(pipe._pack_latents(unpacked, batch, channels, height // 8, width // 8), latents)
        return unpacked
    if isinstance(pipe, diffusers.FluxPipeline):
        # (B, tokens, 64) → (B, 16, H/8, W/8).
        unpacked = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
        channels = unpacked.shape[1]
        assert torch.equal(pipe._pack_latents(unpacked, batch, channels, height // 8, width // 8), latents)
        return unpacked
    return latents  # ZImagePipeline: already (B, 16, H/8, W/8)


def test_step_end_callback_sees_the_latents_at_a_non_square_size(
    family: tuple[str, Family], pipe: diffusers.DiffusionPipeline
) -> None:
    _, fam = family
    width, height = fam.wide_size
    seen: list[tuple[int, tuple[int, ...], torch.Tensor]] = []

    def on_step_end(
        _pipe: diffusers.DiffusionPipeline, step: int, _timestep: torch.Tensor, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        latents = tensors["latents"]
        seen.append((step, tuple(latents.shape), latents.clone()))
        return tensors

    images = _run(
        pipe, fam, fam.wide_size, callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"]
    )
    assert [image.size for image in images] == [fam.wide_size] * 2
    assert [step for step, _, _ in seen] == list(range(STEPS))

    if fam.packed_channels is None:
        expected = (2, fam.latent_channels, height // 8, width // 8)
    else:
        expected = (2, (height // 16) * (width // 16), fam.packed_channels)
    assert all(shape == expected for _, shape, _ in seen)

    unpacked = _unpack(pipe, seen[-1][2], width, height)
    assert unpacked.shape == (2, fam.latent_channels, height // 8, width // 8)
