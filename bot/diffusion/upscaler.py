"""A dedicated upscaler model (``[upscale] model``): the diffusers upscale pipelines and how seedgrid runs them.

Instead of the hires pass (the tile enlarged, then image-to-image on the same model), U1-U4 may hand the tile
to an upscaler pipeline. Its kind, and so its fixed factor, comes from the pipeline class its
``model_index.json`` names, never from the model's name:

* ``StableDiffusionUpscalePipeline`` (stabilityai/stable-diffusion-x4-upscaler): ×4, adds ``noise_level``;
* ``StableDiffusionLatentUpscalePipeline`` (stabilityai/sd-x2-latent-upscaler): ×2.

One call per image, with the tile's prompt and negative and a CPU generator seeded with the tile's seed, so an
upscale is the same image on every run and device. A device loads the upscaler once, on its model shelf
(:mod:`bot.diffusion.shelf`), where it counts against the memory budget like a model.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from bot.config import ModelSettings
from bot.diffusion.devices import dtype_kwarg, dtype_name, resolve_device, resolve_dtype, weight_bytes
from bot.diffusion.families import _read_config, call_defaults
from bot.diffusion.progress import StepCallback, StopCheck
from bot.jobs import RenderCancelled

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

UPSCALER_FACTORS = {"StableDiffusionUpscalePipeline": 4, "StableDiffusionLatentUpscalePipeline": 2}
"""The diffusers upscaler pipelines seedgrid runs, by class, with the factor each enlarges by."""


class NotAnUpscalerError(ValueError):
    """A model whose pipeline class is not one of :data:`UPSCALER_FACTORS`."""


def upscaler_kind(model_id: str) -> tuple[str, int]:
    """The pipeline class and factor of the upscaler ``model_id`` (a Hub id or folder), from its
    ``model_index.json`` (no weights). Blocking. ``OSError``/``ValueError`` when the index cannot be read;
    :class:`NotAnUpscalerError` naming the class when it is not an upscaler pipeline."""
    class_name = str(_read_config(model_id, "model_index.json").get("_class_name", ""))
    if class_name not in UPSCALER_FACTORS:
        known = " or ".join(UPSCALER_FACTORS)
        raise NotAnUpscalerError(f"its model_index.json names {class_name or 'no pipeline class'}, not {known}")
    return class_name, UPSCALER_FACTORS[class_name]


class Upscaler:
    """A loaded upscaler pipeline. Like :class:`bot.diffusion.pipeline.Pipeline`, owned by one device thread."""

    def __init__(self, pipe: Any, model_id: str) -> None:
        class_name = type(pipe).__name__
        if class_name not in UPSCALER_FACTORS:
            raise NotAnUpscalerError(f"{model_id} is a {class_name}, not one of {', '.join(UPSCALER_FACTORS)}")
        self._pipe = pipe
        self._accepted = call_defaults(type(pipe))
        self._lock = threading.Lock()
        self.model_id = model_id
        self.factor = UPSCALER_FACTORS[class_name]

    @property
    def weight_bytes(self) -> int:
        """What the loaded weights take (what the shelf counts against the memory budget)."""
        return weight_bytes(self._pipe)

    @classmethod
    def load(cls, settings: ModelSettings) -> Upscaler:
        """Load ``settings.id`` on ``settings.device`` in ``settings.dtype`` (the models' own). Blocking."""
        import diffusers

        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        offload = settings.cpu_offload and device.startswith("cuda")
        log.info("loading upscaler %s (device %s, dtype %s)", settings.id, device, dtype_name(dtype))
        start = time.perf_counter()
        pipe = diffusers.DiffusionPipeline.from_pretrained(settings.id, **dtype_kwarg(dtype))
        upscaler = cls(pipe, settings.id)  # a ValueError for a pipeline that is not an upscaler
        if offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        log.info(
            "loaded upscaler %s in %.1f s: %s (×%d) on %s, %s",
            settings.id,
            time.perf_counter() - start,
            type(pipe).__name__,
            upscaler.factor,
            device,
            dtype_name(dtype),
        )
        return upscaler

    def upscale(
        self,
        image: Image.Image,
        *,
        prompt: str,
        negative: str,
        seed: int,
        steps: int,
        guidance: float,
        noise_level: int,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
    ) -> Image.Image:
        """``image`` at :attr:`factor` × its size, in one call on a CPU generator seeded with ``seed``. Blocking.

        ``on_step(n, steps)`` after each step; ``should_stop()`` before the run and after each step, a true
        answer ending it with :class:`bot.jobs.RenderCancelled`.
        """
        import torch

        if should_stop is not None and should_stop():
            raise RenderCancelled("stopped before the first step")

        def callback(step: int, _timestep: Any, _latents: Any) -> None:
            if on_step is not None:
                on_step(min(step + 1, steps), steps)
            if should_stop is not None and should_stop():
                raise RenderCancelled(f"stopped after {step + 1} of {steps} steps")

        arguments: dict[str, Any] = {}
        if "noise_level" in self._accepted:
            arguments["noise_level"] = noise_level
        with self._lock:
            output = self._pipe(
                prompt=prompt,
                image=image,
                negative_prompt=negative or None,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
                callback=callback,
                callback_steps=1,
                **arguments,
            )
        upscaled: Image.Image = output.images[0]
        return upscaled
