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

from bot.diffusion.schedulers import noise_scale

if TYPE_CHECKING:
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
    A preview only reads the latents; one that fails is logged and skipped.
    """

    def __init__(
        self,
        steps: int,
        on_step: StepCallback | None,
        should_stop: StopCheck | None,
        on_preview: PreviewCallback | None = None,
        preview_every: int = 0,
    ) -> None:
        self.steps = steps
        self.on_step = on_step
        self.should_stop = should_stop
        self.on_preview = on_preview if preview_every > 0 else None
        self.preview_every = preview_every
        self.reported = 0
        self.cancelled = False

    def stop_requested(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def __call__(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        iterations = getattr(pipe, "num_timesteps", None) or self.steps
        done = min(self.steps, (step + 1) * self.steps // iterations)
        previous, self.reported = self.reported, max(self.reported, done)
        if done > previous and self.on_step is not None:
            self.on_step(done, self.steps)
        if self.stop_requested():
            self.cancelled = True
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
            image = latents_to_preview(latents / noise_scale(pipe.scheduler))
            log.debug("preview at step %d/%d: %d bytes in %.1f ms", done, self.steps, len(image), _ms(start))
            self.on_preview(done, image)
        except Exception:
            log.warning("preview at step %d of %d failed; skipped", done, self.steps, exc_info=True)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000
