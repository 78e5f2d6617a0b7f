"""The speed options of ``[model]``: attention kernel, memory format, fused projections, torch.compile.

None of them changes what a seed draws: the same seed gives the same image every time, with or
without them.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.config import ModelSettings
from bot.diffusion.families import Family

log = logging.getLogger(__name__)


def apply_speed_options(pipe: Any, settings: ModelSettings, family: Family, *, offload: bool) -> tuple[str, ...]:
    """Attention kernel, memory format, fused projections and torch.compile, as the config and the family allow.

    The attention processors, fused q/k/v and channels-last are UNet options (a transformer family
    keeps its own attention processors, and channels-last does not apply to 3-D weights);
    ``torch.compile`` wraps the family's denoiser (``unet`` or ``transformer``) and the VAE decoder.
    Returns the names of the options in effect. Each is safe on CPU (the test suite runs them all
    with the tiny model) and keeps runs reproducible: the same seed gives the same image every time.
    """
    applied: list[str] = []
    if family.unet_options:
        applied.extend(_unet_options(pipe, settings, offload=offload))
    elif (settings.attention, settings.fuse_qkv, settings.channels_last) != ("sdpa", False, False):
        log.info("%s: attention, fuse_qkv and channels_last are UNet options; it keeps its own", family.label)
    denoiser = getattr(pipe, family.denoiser, None) if family.denoiser else None
    # torch.compile of the denoiser and the VAE decoder (warm-up happens in Pipeline.warm_up)
    if settings.compile and denoiser is None:
        log.warning("%s: no denoiser seedgrid knows how to compile; model.compile is ignored", family.label)
    elif settings.compile:
        import torch

        options: dict[str, Any] = {"backend": settings.compile_backend, "fullgraph": False}
        if settings.compile_backend == "inductor":  # modes are inductor's
            options["mode"] = settings.compile_mode
        setattr(pipe, family.denoiser, torch.compile(denoiser, **options))
        if getattr(pipe, "vae", None) is not None:
            pipe.vae.decoder = torch.compile(pipe.vae.decoder, **options)
        applied.append(f"compile({family.denoiser}, {settings.compile_backend}, {settings.compile_mode})")
    return tuple(applied)


def _unet_options(pipe: Any, settings: ModelSettings, *, offload: bool) -> list[str]:
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    applied: list[str] = []
    modules = [m for m in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)) if m is not None]
    # 1. attention kernel (diffusers picks SDPA by default on torch 2; "classic" forces the plain one)
    for module in modules:
        if hasattr(module, "set_attn_processor"):
            module.set_attn_processor(AttnProcessor2_0() if settings.attention == "sdpa" else AttnProcessor())
    applied.append(settings.attention)
    # 2. fused q/k/v projections (before compile, which must see the final modules)
    if settings.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
        applied.append("fuse_qkv")
    # 3. channels-last memory format for the convolution-heavy modules
    if settings.channels_last and not offload:
        import torch

        for module in modules:
            module.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    return applied
