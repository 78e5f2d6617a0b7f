"""What a run reports while it goes: the callbacks' types, and the diffusers step callback that drives them.

A batch runs as one diffusers call; :class:`StepReporter` is that call's ``callback_on_step_end``.
After each loop iteration it reports progress in the member's units, asks for an interrupt when
the job is to stop, and now and then sends a cheap preview of the latents
(:mod:`bot.diffusion.preview`). torch is never imported here at module level.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.diffusion.families import SD1, Family, colours_for, preview_latents
from bot.diffusion.schedulers import noise_scale
from bot.jobs import RenderCancelled

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
"""``on_step(done, total)``: ``done`` of ``total`` denoising steps have finished (1-based)."""
StopCheck = Callable[[], bool]
"""``should_stop()``: polled after every step; true stops the run and raises :class:`bot.jobs.RenderCancelled`."""
PreviewCallback = Callable[[int, bytes], None]
"""``on_preview(done, image)``: an encoded preview of the batch after ``done`` steps (:mod:`bot.diffusion.preview`)."""


class StepReporter:
    """The ``callback_on_step_end`` of one call: reports progress, asks for an interrupt, previews.

    Progress is reported in the member's units: ``on_step(n, steps)`` for ``n = 1 .. steps``,
    each once, in order. Most schedulers run one loop iteration per step; PNDM (SD 1.5's
    default) runs ``steps + 1`` and second-order schedulers about twice as many, so the
    iteration count is scaled down and ``(steps, steps)`` arrives with the last iteration.

    With ``on_preview`` and ``preview_every > 0``, ``on_preview(n, image)`` follows every
    ``preview_every``-th reported step except the last (the finished images follow at once).
    A preview only reads the latents, as ``family`` lays them out (``size`` is the image's width
    and height, to unpack packed latents); one that fails is logged and skipped.

    Pipelines without ``callback_on_step_end`` (PixArt-Σ) get the old ``callback(step, timestep,
    latents)`` instead (:meth:`callback_arguments`); there a stop raises
    :class:`bot.jobs.RenderCancelled` out of the loop, the only way to end it early.
    """

    def __init__(
        self,
        steps: int,
        on_step: StepCallback | None,
        should_stop: StopCheck | None,
        on_preview: PreviewCallback | None = None,
        preview_every: int = 0,
        *,
        family: Family = SD1,
        size: tuple[int, int] = (512, 512),
    ) -> None:
        self.steps = steps
        self.on_step = on_step
        self.should_stop = should_stop
        self.on_preview = on_preview if preview_every > 0 else None
        self.preview_every = preview_every
        self.family = family
        self.size = size
        self.reported = 0
        self.cancelled = False

    def callback_arguments(self, accepted: Mapping[str, Any], pipe: Any = None) -> dict[str, Any]:
        """The pipeline arguments that make this reporter its step callback (none if it takes neither kind)."""
        if "callback_on_step_end" in accepted:
            return {"callback_on_step_end": self, "callback_on_step_end_tensor_inputs": ["latents"]}
        if "callback" in accepted and "callback_steps" in accepted:

            def legacy(step: int, timestep: Any, latents: torch.Tensor) -> None:
                self(pipe, step, timestep, {"latents": latents})
                if self.cancelled:
                    raise RenderCancelled(f"stopped after {self.reported} of {self.steps} steps")

            return {"callback": legacy, "callback_steps": 1}
        log.warning("this pipeline takes no step callback: no progress, previews or cancelling mid-run")
        return {}

    def stop_requested(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        iterations = getattr(pipe, "num_timesteps", None) or _timestep_count(pipe) or self.steps
        done = min(self.steps, (step + 1) * self.steps // iterations)
        previous, self.reported = self.reported, max(self.reported, done)
        if done > previous and self.on_step is not None:
            self.on_step(done, self.steps)
        if self.stop_requested():
            self.cancelled = True
            if pipe is not None:
                pipe._interrupt = True  # the documented way: the loop skips the remaining steps
        elif done > previous and self._preview_due(previous, done):
            self._preview(pipe, done, kwargs.get("latents"))
        return kwargs  # untouched: the run is the same with or without previews

    def _preview_due(self, previous: int, done: int) -> bool:
        # a multiple of preview_every was reached (or passed, when one iteration covers several steps)
        return (
            self.on_preview is not None
            and done < self.steps
            and done // self.preview_every > previous // self.preview_every
        )

    def _preview(self, pipe: Any, done: int, latents: torch.Tensor | None) -> None:
        from bot.diffusion.preview import latents_to_preview

        if latents is None or self.on_preview is None:
            return
        try:
            start = time.perf_counter()
            laid_out = preview_latents(self.family, latents, *self.size)
            if laid_out is None:
                return
            colours = colours_for(self.family, laid_out.shape[1])
            image = latents_to_preview(laid_out / noise_scale(pipe.scheduler), colours=colours)
            log.debug("preview at step %d/%d: %d bytes in %.1f ms", done, self.steps, len(image), _ms(start))
            self.on_preview(done, image)
        except Exception:
            log.warning("preview at step %d of %d failed; skipped", done, self.steps, exc_info=True)


def _timestep_count(pipe: Any) -> int:
    """The loop's length where the pipeline does not say (the old-callback pipelines): its scheduler's timesteps."""
    timesteps = getattr(getattr(pipe, "scheduler", None), "timesteps", None)
    return len(timesteps) if timesteps is not None else 0


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
