"""Live previews (``bot/diffusion/preview.py``): the latent → RGB approximation, the preview grid, and
previews through the pipeline."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bot.config import ModelSettings
from bot.diffusion.pipeline import Pipeline
from bot.diffusion.preview import PREVIEW_FORMAT, latents_to_preview, latents_to_rgb
from bot.imaging.grid import EMPTY_FILL
from bot.jobs import GenParams, RenderCancelled, Tile

SIZE = 64
STEPS = 8


@pytest.fixture(scope="module")
def pipeline(tiny_model: Path) -> Pipeline:
    return Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu"))


def params(count: int = 4, *, steps: int = STEPS) -> GenParams:
    tiles = tuple(Tile("a lighthouse", 40 + i) for i in range(count))
    return GenParams(tiles=tiles, negative="", steps=steps, guidance=7.5, width=SIZE, height=SIZE)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == PREVIEW_FORMAT
    return image.convert("RGB")


def one_latent(*channels: float, size: int = 8) -> torch.Tensor:
    """One image whose every latent pixel is ``channels``."""
    return torch.tensor(channels, dtype=torch.float32).reshape(1, len(channels), 1, 1).expand(1, -1, size, size)


# --- latents → RGB ------------------------------------------------------------------------------


def test_zero_latents_are_mid_grey() -> None:
    rgb = latents_to_rgb(torch.zeros(2, 4, 8, 8))
    assert rgb.shape == (2, 8, 8, 3)
    assert rgb.dtype == torch.uint8
    assert set(rgb.unique().tolist()) <= {127, 128}


def test_sd1_coefficients_give_plausible_colours() -> None:
    def colour(*channels: float) -> tuple[int, int, int]:
        r, g, b = latents_to_rgb(one_latent(*channels))[0, 0, 0].tolist()
        return r, g, b

    # channel 0 is mostly luminance: more of it is brighter, in every colour
    bright, dark = colour(1.5, 0, 0, 0), colour(-1.5, 0, 0, 0)
    assert all(b > 150 for b in bright)  # (184, 167, 167)
    assert all(d < 105 for d in dark)  # (70, 87, 87)
    # channel 3 pulls towards yellow (+) or blue (-), channel 2 towards cyan (+) or red (-)
    r, g, b = colour(0, 0, 0, -1.5)
    assert b > g > r
    r, g, b = colour(0, 0, 0, 1.5)
    assert r > g > b
    r, g, b = colour(0, 0, -1.5, 0)
    assert r > g and r > b


@pytest.mark.parametrize("channels", [1, 3, 8, 16])
def test_other_channel_counts_get_a_generic_projection(channels: int) -> None:
    latents = torch.randn(2, channels, 8, 8, generator=torch.Generator().manual_seed(channels))
    rgb = latents_to_rgb(latents).numpy().astype(int)
    assert rgb.shape == (2, 8, 8, 3)
    assert rgb.std() > 20  # spread over the range, not flat
    assert 100 < rgb.mean() < 156
    if channels == 1:
        assert (rgb[..., 0] == rgb[..., 1]).all()  # grey


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_latents(dtype: torch.dtype) -> None:
    latents = torch.randn(1, 4, 8, 8).to(dtype)
    assert latents_to_rgb(latents).shape == (1, 8, 8, 3)


def test_the_latents_are_not_touched() -> None:
    latents = torch.randn(4, 4, 8, 8)
    before = latents.clone()
    latents_to_preview(latents)
    assert torch.equal(latents, before)


@pytest.mark.parametrize("shape", [(4, 8, 8), (5, 4, 8, 8), (0, 4, 8, 8)])
def test_bad_shapes_fail_clearly(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"latents|grid holds"):
        latents_to_preview(torch.zeros(shape))


# --- the preview grid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "latent_size", "expected"),
    [
        (1, (8, 8), (256, 256)),
        (2, (8, 8), (256, 128)),
        (3, (8, 8), (256, 256)),
        (4, (8, 8), (256, 256)),
        (4, (64, 64), (256, 256)),  # a 1024² grid of 512² tiles
        (2, (64, 96), (256, 85)),  # two 768×512 (landscape) tiles
        (4, (96, 64), (170, 256)),  # four 512×768 (portrait) tiles
    ],
)
def test_layout_and_size(batch: int, latent_size: tuple[int, int], expected: tuple[int, int]) -> None:
    image = decode(latents_to_preview(torch.zeros(batch, 4, *latent_size)))
    assert image.size == expected
    pixels = np.asarray(image, dtype=int)
    # a zero latent is grey; away from the badges (top-left of each tile) every tile is uniform grey
    assert abs(int(np.median(pixels)) - 128) <= 3
    if batch == 3:  # the empty fourth slot, as in the final grid
        h, w = pixels.shape[:2]
        assert np.abs(pixels[h * 3 // 4, w * 3 // 4] - np.array(EMPTY_FILL)).max() <= 6


def test_max_side() -> None:
    small = decode(latents_to_preview(torch.zeros(4, 4, 64, 64), max_side=128))
    assert small.size == (128, 128)
    with pytest.raises(ValueError, match="max_side"):
        latents_to_preview(torch.zeros(1, 4, 8, 8), max_side=0)


def test_tiles_keep_their_place() -> None:
    # tile 2 (top right) bright, the others dark: the preview grid has the final grid's layout
    latents = torch.full((4, 4, 8, 8), -1.5) * torch.tensor([1, 0, 0, 0]).reshape(1, 4, 1, 1)
    latents[1, 0] = 1.5
    pixels = np.asarray(decode(latents_to_preview(latents)), dtype=int)
    corners = pixels[80:128, 200:256].mean(), pixels[200:256, 200:256].mean(), pixels[200:256, 80:128].mean()
    assert corners[0] > 170
    assert max(corners[1:]) < 85


# --- through the pipeline -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "steps", "expected"),
    [(1, STEPS, [1, 2, 3, 4, 5, 6, 7]), (3, STEPS, [3, 6]), (2, 4, [2]), (4, 4, []), (9, STEPS, []), (0, STEPS, [])],
)
def test_previews_every_n_steps(pipeline: Pipeline, every: int, steps: int, expected: list[int]) -> None:
    events: list[tuple[str, int]] = []
    previews: list[bytes] = []

    def on_preview(step: int, image: bytes) -> None:
        events.append(("preview", step))
        previews.append(image)

    pipeline.generate(
        params(steps=steps),
        on_step=lambda n, _: events.append(("step", n)),
        on_preview=on_preview,
        preview_every=every,
    )
    assert [step for kind, step in events if kind == "preview"] == expected
    # each preview follows its step's progress report, before the next step
    for step in expected:
        assert events[events.index(("preview", step)) - 1] == ("step", step)
    for data in previews:
        assert decode(data).size == (256, 256)


def test_previews_never_change_the_images(pipeline: Pipeline) -> None:
    batch = params()
    plain = pipeline.generate(batch)
    seen: list[int] = []
    previewed = pipeline.generate(batch, on_preview=lambda step, _: seen.append(step), preview_every=1)
    assert seen == list(range(1, STEPS))
    assert [im.tobytes() for im in previewed.images] == [im.tobytes() for im in plain.images]


def test_a_failing_preview_is_skipped(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    def broken(step: int, image: bytes) -> None:
        raise OSError("preview sink broke")

    batch = params(2, steps=4)
    plain = pipeline.generate(batch)
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.progress"):
        output = pipeline.generate(batch, on_preview=broken, preview_every=1)
    assert [im.tobytes() for im in output.images] == [im.tobytes() for im in plain.images]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "preview" in r.getMessage()]
    assert len(warnings) == 3  # steps 1-3; step 4 is the last


def test_no_preview_after_cancel(pipeline: Pipeline) -> None:
    steps: list[int] = []
    previews: list[int] = []
    with pytest.raises(RenderCancelled):
        pipeline.generate(
            params(),
            on_step=lambda n, _: steps.append(n),
            should_stop=lambda: len(steps) >= 2,
            on_preview=lambda n, _: previews.append(n),
            preview_every=1,
        )
    assert previews == [1]


def test_negative_preview_every_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(ValueError, match="preview_every"):
        pipeline.generate(params(1), preview_every=-1)


def test_sigma_schedulers_are_not_saturated(tiny_model: Path) -> None:
    # Euler's loop carries x0 + σ·noise (σ up to ~14.6); the preview divides by sqrt(σ² + 1)
    euler = Pipeline.load(ModelSettings(id=str(tiny_model), device="cpu", scheduler="EulerDiscreteScheduler"))
    previews: list[bytes] = []
    euler.generate(params(steps=4), on_preview=lambda _, image: previews.append(image), preview_every=1)
    assert len(previews) == 3
    first = np.asarray(decode(previews[0]), dtype=int)
    saturated = ((first <= 5) | (first >= 250)).mean()
    assert saturated < 0.2, f"{saturated:.0%} of the first preview's values are clipped"
