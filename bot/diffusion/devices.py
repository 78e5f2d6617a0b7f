"""Where the model runs and in which precision: ``model.device`` and ``model.dtype`` → torch.

The spelling of a device setting is :mod:`bot.config`'s (:func:`bot.config.check_device`); what is
checked here is what only torch can say: whether that device is there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, cuda_index

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def resolve_device(setting: str) -> str:
    """``model.device`` → a torch device string; ``auto`` picks cuda, then mps, then cpu.

    Raises :class:`~bot.config.ConfigError` when the asked-for device is not there.
    """
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if setting == "cpu":
        return setting
    if setting == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("model.device: 'mps' was asked for but torch.backends.mps.is_available() is False")
        return setting
    index = cuda_index(setting)
    if index is not None:
        if not torch.cuda.is_available():
            raise ConfigError(
                f"model.device: {setting!r} was asked for but torch sees no CUDA device "
                "(torch.cuda.is_available() is False; is this a CPU-only torch build?)"
            )
        count = torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"model.device: {setting!r} does not exist; torch sees {count} CUDA device(s)")
        return setting
    raise ConfigError(f"model.device: expected auto, cpu, mps, cuda or cuda:N, got {setting!r}")


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    """``model.dtype`` → a torch dtype; ``auto`` is float16 on cuda/mps and float32 on cpu."""
    import torch

    accelerated = device.partition(":")[0] in ("cuda", "mps")
    if setting == "auto":
        return torch.float16 if accelerated else torch.float32
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if setting not in dtypes:
        raise ConfigError(f"model.dtype: expected one of auto, {', '.join(dtypes)}, got {setting!r}")
    if setting == "float16" and not accelerated:
        log.warning("model.dtype float16 on %s is slow and some operations lack float16 kernels", device)
    return dtypes[setting]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` → ``float16``, as the config spells it."""
    return str(dtype).removeprefix("torch.")


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained``'s dtype argument: ``dtype`` since diffusers 0.40 (checked on 0.40.0 and 0.42.1),
    where ``torch_dtype`` warns it is deprecated; ``torch_dtype`` before that."""
    import diffusers
    from packaging.version import Version

    name = "dtype" if Version(diffusers.__version__).release >= (0, 40) else "torch_dtype"
    return {name: dtype}


def weight_bytes(pipe: Any) -> int:
    """What a loaded pipeline's weights take (every torch module of it: parameters and buffers)."""
    import torch

    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            tensors = [*component.parameters(), *component.buffers()]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total
