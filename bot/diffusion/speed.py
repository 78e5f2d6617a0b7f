"""The speed options of ``[model]``: attention kernel, fused projections, memory format, FP8, torch.compile.

None of them changes what a seed draws beyond float rounding: the same seed gives the same image
every time, with or without them. :func:`apply_speed_options` returns exactly what it applied
(``PipelineInfo.speed``); an option asked for but not applied is logged with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.config import ConfigError, ModelSettings
from bot.diffusion.compiled import compile_module, use_cache
from bot.diffusion.families import Family

log = logging.getLogger(__name__)

FP8_CAPABILITY = (8, 9)
"""float8 matmuls (``torch._scaled_mm``) need Ada (8.9) or Hopper (9.0) and newer."""


def channels_last_wanted(settings: ModelSettings) -> bool:
    """``model.channels_last``, or when unset: on with ``model.compile`` only.

    Eagerly, channels-last costs layout conversions around every GroupNorm (which returns the
    standard layout on CUDA); compiled, inductor fuses them away and the convolutions gain.
    """
    return settings.compile if settings.channels_last is None else settings.channels_last


def fp8_problem(settings: ModelSettings, device: str, dtype: str = "bfloat16") -> str | None:
    """Why ``model.quantize = "fp8"`` cannot run on ``device`` in ``dtype`` (None: it can). Before loading weights."""
    if settings.quantize != "fp8":
        return None
    if not device.startswith("cuda"):
        return f"needs a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper); the device is {device}"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU of compute capability 8.9 or newer (Ada, Hopper); torch sees no CUDA device"
    index = torch.device(device).index
    capability = tuple(torch.cuda.get_device_capability(index))
    if capability < FP8_CAPABILITY:
        name = torch.cuda.get_device_name(index)
        return f"needs compute capability 8.9 or newer (Ada, Hopper); {name} has {capability[0]}.{capability[1]}"
    if dtype != "bfloat16":
        return (
            f'needs dtype = "bfloat16" or "auto" (torchao\'s per-row float8 scales take bfloat16 weights), got {dtype}'
        )
    try:
        import torchao  # noqa: F401
    except ImportError:
        return "needs torchao (pip install 'seedgrid[fp8]')"
    return None


def check_quantize(settings: ModelSettings, device: str, dtype: str = "bfloat16") -> None:
    """Raise :class:`bot.config.ConfigError` naming ``model.quantize`` when FP8 cannot run here."""
    if (problem := fp8_problem(settings, device, dtype)) is not None:
        raise ConfigError(f'model.quantize = "fp8": {problem}; leave quantize = "" on this machine')


def fp8_config() -> Any:
    """torchao's float8 dynamic quantization with per-row scales (per token for activations).

    Per-tensor scales would span the whole batch, so a tile would depend on its neighbours and a
    tile of a grid would no longer be the image its seed draws alone.
    """
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

    return Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())


def fp8_eligible(module: Any, name: str) -> bool:
    """The linear layers float8 matmuls can take: both sides multiples of 16 (and not tiny ones)."""
    import torch

    if not isinstance(module, torch.nn.Linear):
        return False
    return module.in_features % 16 == 0 and module.out_features % 16 == 0 and module.in_features >= 64


def apply_speed_options(pipe: Any, settings: ModelSettings, family: Family, *, offload: bool) -> tuple[str, ...]:
    """Attention kernel, fused q/k/v, channels-last, FP8 and torch.compile, as the config and the family allow.

    The attention processors, fused q/k/v and channels-last are UNet options (a transformer family
    keeps its own attention processors, and channels-last does not apply to 3-D weights); FP8 and
    ``torch.compile`` apply to the family's denoiser (``unet`` or ``transformer``), compile to the
    VAE decoder too (:mod:`bot.diffusion.compiled`; the warm-up is :meth:`Pipeline.warm_up`).
    Returns the options in effect, in the order applied.
    """
    applied: list[str] = []
    if family.unet_options:
        applied.extend(_unet_options(pipe, settings, offload=offload))
    elif settings.attention == "classic" or settings.channels_last:
        log.info("%s: attention and channels_last are UNet options; it keeps its own", family.label)
    denoiser = getattr(pipe, family.denoiser, None) if family.denoiser else None
    if settings.quantize == "fp8":
        if denoiser is None:
            raise ConfigError(f'model.quantize = "fp8": {family.label} has no denoiser seedgrid knows how to quantize')
        from torchao.quantization import quantize_

        quantize_(denoiser, fp8_config(), filter_fn=fp8_eligible)
        applied.append(f"fp8({family.denoiser}, per-row)")
    if settings.compile and denoiser is None:
        log.warning("%s: no denoiser seedgrid knows how to compile; model.compile is ignored", family.label)
    elif settings.compile:
        if settings.compile_cache:
            log.info("torch.compile cache: %s", use_cache(settings.compile_cache))
        options: dict[str, Any] = {"backend": settings.compile_backend}
        if settings.compile_backend == "inductor":  # modes are inductor's
            options["mode"] = settings.compile_mode
        # UNets trace as one graph; transformer families may break at data-dependent code, and
        # accelerate's offload hooks (cpu_offload) move weights inside the forward
        compile_module(denoiser, family.denoiser, {**options, "fullgraph": family.unet_options and not offload})
        if getattr(pipe, "vae", None) is not None:
            compile_module(pipe.vae.decoder, "vae.decoder", {**options, "fullgraph": not offload})
        mode = f", {settings.compile_mode}" if settings.compile_backend == "inductor" else ""
        applied.append(f"compile({family.denoiser}, {settings.compile_backend}{mode}, static shapes)")
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
    # 2. fused q/k/v projections (before FP8 and compile, which must see the final modules); the fused
    #    processor is an SDPA one, so "classic" stays unfused
    if settings.fuse_qkv and settings.attention == "classic":
        log.info("model.fuse_qkv: the fused projections run SDPA attention; with attention = classic they stay unfused")
    elif settings.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
        freed = sum(drop_unfused_projections(module) for module in modules)
        log.info("fused q/k/v projections; %.0f MiB of unfused copies freed", freed / 2**20)
        applied.append("fuse_qkv")
    # 3. channels-last memory format for the convolution-heavy modules
    if channels_last_wanted(settings) and offload:
        log.info("model.channels_last is not applied with cpu_offload")
    elif channels_last_wanted(settings):
        import torch

        for module in modules:
            module.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    return applied


def drop_unfused_projections(module: Any) -> int:
    """Delete the q/k/v layers the fused ones replace (fusing copies them); returns the bytes freed.

    The fused processor reads ``to_qkv`` in self-attention and ``to_q`` + ``to_kv`` in cross-attention.
    ``unfuse_qkv_projections()`` is not possible afterwards (seedgrid never unfuses).
    """
    from diffusers.models.attention_processor import Attention

    freed = 0
    for attention in module.modules():
        if not isinstance(attention, Attention) or not getattr(attention, "fused_projections", False):
            continue
        if not attention.is_cross_attention and hasattr(attention, "to_qkv"):
            names: tuple[str, ...] = ("to_q", "to_k", "to_v")
        elif attention.is_cross_attention and hasattr(attention, "to_kv"):
            names = ("to_k", "to_v")
        else:
            continue
        for name in names:
            layer = getattr(attention, name, None)
            if layer is None:
                continue
            freed += sum(p.numel() * p.element_size() for p in layer.parameters())
            delattr(attention, name)
    return freed
