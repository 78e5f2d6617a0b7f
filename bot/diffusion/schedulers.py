"""Schedulers: one named in the config, swapped in keeping the model's noise schedule, and how its latents scale."""

from __future__ import annotations

import logging
import math
from typing import Any

from bot.config import ConfigError

log = logging.getLogger(__name__)


def resolve_scheduler(name: str) -> type[Any]:
    """A diffusers scheduler class by name (``EulerAncestralDiscreteScheduler``), or ConfigError."""
    import diffusers

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise ConfigError(
            f"model.scheduler: {name!r} is not a scheduler class in diffusers {diffusers.__version__} "
            "(try EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler, "
            "DDIMScheduler or PNDMScheduler)"
        )
    return cls


def use_scheduler(pipe: Any, scheduler_cls: type[Any]) -> None:
    """Give ``pipe`` a ``scheduler_cls`` built from its own scheduler's config (the model's noise schedule).

    A class the model's scheduler does not list as compatible is used all the same, with a warning.
    """
    if scheduler_cls.__name__ not in {c.__name__ for c in getattr(pipe.scheduler, "compatibles", [])}:
        log.warning(
            "model.scheduler %s is not listed as compatible with %s",
            scheduler_cls.__name__,
            type(pipe.scheduler).__name__,
        )
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)


def noise_scale(scheduler: Any) -> float:
    """What the loop's latents are divided by to look like SD's (variance-preserving) latents.

    Schedulers with a variance-preserving loop (PNDM, DDIM, DPM-Solver: ``init_noise_sigma`` 1)
    need nothing. Sigma-based ones (Euler, Heun, LMS: ``init_noise_sigma`` ≈ 14.6) carry
    ``x0 + sigma·noise``, which saturates a preview; ``sqrt(sigma² + 1)`` is the scale their
    ``scale_model_input`` divides by, read here without calling it (it touches the scheduler's
    state). After ``step()`` the scheduler's ``step_index`` points at the current latents' sigma.
    """
    index = getattr(scheduler, "step_index", None)
    sigmas = getattr(scheduler, "sigmas", None)
    try:
        if index is None or sigmas is None or float(getattr(scheduler, "init_noise_sigma", 1.0)) <= 1.0:
            return 1.0
        sigma = float(sigmas[min(int(index), len(sigmas) - 1)])
    except (IndexError, TypeError, ValueError, RuntimeError):
        return 1.0
    return math.sqrt(sigma * sigma + 1.0)
