"""Tiny, random, deterministic, offline diffusers pipelines for tests, one builder per model family.

:data:`FAMILIES` lists every family seedgrid supports with its builder, the size its tiny model
runs at, and what a plain diffusers user would pass for the family's preset (the oracle the
family tests compare seedgrid's batched runs against).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.families import flux, flux2, pixart, qwenimage, sana, sd3, sdxl, zimage
from tests.tiny_model import build_tiny_pipeline


@dataclass(frozen=True)
class TinyFamily:
    name: str
    """The family seedgrid must recognise (``bot.diffusion.families.Family.name``)."""
    build: Callable[[Path], Path]
    size: tuple[int, int]
    """(width, height) the tiny model runs at."""
    plain: dict[str, Any] = field(default_factory=dict)
    """The preset's arguments as a plain diffusers call spells them (guidance, negative, sequence length)."""
    scheduler: str = ""
    """``[model] scheduler`` (the LCM variant of SD 1.x)."""
    tokens: int = 77
    """What the family's reading encoder takes (the "words cut" notice's limit)."""


FAMILIES: tuple[TinyFamily, ...] = (
    TinyFamily("sd1", build_tiny_pipeline, (64, 64), {"guidance_scale": 7.5}),
    TinyFamily("sd1-lcm", build_tiny_pipeline, (64, 64), {"guidance_scale": 1.0}, scheduler="LCMScheduler"),
    TinyFamily("sdxl", sdxl.build_sdxl, sdxl.TINY_WIDE, {"guidance_scale": 5.0}),
    TinyFamily("sd3", sd3.build_sd3, sd3.TINY_WIDE, {"guidance_scale": 7.0, "max_sequence_length": 256}, tokens=256),
    TinyFamily(
        "flux-dev", flux.build_flux_dev, flux.TINY_WIDE, {"guidance_scale": 3.5, "max_sequence_length": 512}, tokens=512
    ),
    TinyFamily(
        "flux-schnell",
        flux.build_flux_schnell,
        flux.TINY_WIDE,
        {"guidance_scale": 0.0, "max_sequence_length": 256},
        tokens=256,
    ),
    TinyFamily(
        "flux2-klein",
        flux2.build_flux2_klein,
        flux2.TINY_WIDE,
        {"guidance_scale": 0.0, "max_sequence_length": 512},
        tokens=512,
    ),
    TinyFamily(
        "qwen-image",
        qwenimage.build_qwen_image,
        qwenimage.TINY_WIDE,
        {"true_cfg_scale": 4.0, "negative_prompt": " ", "max_sequence_length": 512},
        tokens=512,
    ),
    TinyFamily(
        "z-image",
        zimage.build_z_image,
        zimage.TINY_WIDE,
        {"guidance_scale": 0.0, "max_sequence_length": 512},
        tokens=512,
    ),
    TinyFamily(
        "pixart-sigma",
        pixart.build_pixart_sigma,
        pixart.TINY_WIDE,
        {"guidance_scale": 4.5, "negative_prompt": "", "max_sequence_length": 300},
        tokens=300,
    ),
    TinyFamily(
        "sana",
        sana.build_sana,
        sana.TINY_WIDE,
        {"guidance_scale": 4.5, "negative_prompt": "", "max_sequence_length": 300},
        tokens=300,
    ),
)
