"""The speed options of ``[model]``: attention kernel, memory format, fused projections, torch.compile.

None of them changes what a seed draws: the same seed gives the same image every time, with or
without them.
"""

from __future__ import annotations

from typing import Any

from bot.config import ModelSettings


def apply_speed_options(pipe: Any, settings: ModelSettings, *, offload: bool) -> tuple[str, ...]:
    """Attention kernel, memory format, fused projections and torch.compile, as the config says.

    Returns the names of the options in effect. Each is safe on CPU (the test suite runs them all
    with the tiny model) and keeps runs reproducible: the same seed gives the same image every time.
    """
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
    # 4. torch.compile of the UNet and the VAE decoder (warm-up happens in Pipeline.warm_up)
    if settings.compile:
        import torch

        options: dict[str, Any] = {"backend": settings.compile_backend, "fullgraph": False}
        if settings.compile_backend == "inductor":  # modes are inductor's
            options["mode"] = settings.compile_mode
        pipe.unet = torch.compile(pipe.unet, **options)
        if getattr(pipe, "vae", None) is not None:
            pipe.vae.decoder = torch.compile(pipe.vae.decoder, **options)
        applied.append(f"compile({settings.compile_backend}, {settings.compile_mode})")
    return tuple(applied)
