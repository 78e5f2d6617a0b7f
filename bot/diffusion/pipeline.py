"""A loaded text-to-image pipeline and the one way seedgrid runs it: seeded batches.

The technique (diffusers guide "Improve image quality with deterministic generation"): one
batched call with a *list* of CPU ``torch.Generator`` objects, one per image, each seeded.
The initial noise of image *i* then depends on its own seed only, so tile *i* of a batch is
the image a one-image run with that prompt and seed would give, on any device; re-running a
seed with a refined prompt keeps the composition.

A :class:`Pipeline` is not meant to be shared between threads: diffusers schedulers are
stateful. :meth:`Pipeline.generate` holds a lock for the whole call so that a mistake
serialises runs instead of corrupting them; :meth:`Pipeline.prompt_overflow` uses its own
copy of the tokenizer (:class:`bot.diffusion.prompts.PromptLimit`) and may be called from any thread.

The safety checker is run by :meth:`Pipeline.generate` itself, after the diffusers call and on
a copy of the images (:mod:`bot.diffusion.checker`): the images come back as drawn, with a
verdict for each.

torch and diffusers are imported inside the functions that need them, so importing this
module stays cheap (the CLI's ``--help``, type hints); the device's worker thread pays for
the import on :meth:`Pipeline.load`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import ModelSettings
from bot.diffusion.checker import has_checker, keep_or_drop_checker, run_checker, without_builtin_checker
from bot.diffusion.devices import dtype_kwarg, dtype_name, resolve_device, resolve_dtype
from bot.diffusion.families import Family, call_arguments, call_defaults, facts_of, identify
from bot.diffusion.progress import PreviewCallback, StepCallback, StepReporter, StopCheck
from bot.diffusion.prompts import PromptLimit
from bot.diffusion.schedulers import resolve_scheduler, use_scheduler
from bot.diffusion.speed import apply_speed_options
from bot.engine.backend import ModelInfo
from bot.jobs import SEED_LIMIT, GenParams, RenderCancelled, Tile

if TYPE_CHECKING:
    from PIL import Image

    from bot.diffusion.classifier import ImageClassifier

log = logging.getLogger(__name__)

MAX_TILES = 8
"""The most images one call may make (a grid shows four; a refine job makes one per suffix)."""


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The images of one call, in tile order, and whether the safety checker flagged each one.

    The images are the originals, flagged or not: what to show is the channel policy's call.
    """

    images: list[Image.Image]
    nsfw: list[bool]
    elapsed: float
    """Seconds the pipeline call and the safety check took (``time.perf_counter``)."""


class Pipeline:
    """A loaded diffusers text-to-image pipeline and the one way seedgrid runs it."""

    def __init__(
        self, pipe: Any, info: ModelInfo, family: Family | None = None, *, classifier: ImageClassifier | None = None
    ) -> None:
        # `pipe` is a diffusers pipeline (StableDiffusionPipeline for SD 1.x); typed Any because
        # AutoPipelineForText2Image picks the class at run time.
        self._pipe = pipe
        self._lock = threading.Lock()
        self.family = family or identify(facts_of(pipe))
        self._accepted = call_defaults(type(pipe))
        self._prompts = PromptLimit.for_family(getattr(pipe, self.family.prompt_reader), self.family)
        self._checks = has_checker(pipe)
        self._classifier = None if self._checks else classifier
        self.info = info

    @property
    def weight_bytes(self) -> int:
        """What the loaded weights take (every torch module of the pipeline: parameters and buffers)."""
        import torch

        total = 0
        for component in self._pipe.components.values():
            if isinstance(component, torch.nn.Module):
                tensors = [*component.parameters(), *component.buffers()]
                total += sum(t.numel() * t.element_size() for t in tensors)
        return total

    @classmethod
    def load(
        cls,
        settings: ModelSettings,
        *,
        safety_checker: bool = True,
        classifier: Callable[[], ImageClassifier] | None = None,
    ) -> Pipeline:
        """Load ``settings.id`` (a Hub id or a ``save_pretrained`` folder). Blocking: seconds to minutes.

        With ``safety_checker`` (``[safety] checker``) every batch goes through the model's
        safety checker when it has one, else through the image classifier ``classifier()`` makes
        (called only then); with False the model's checker is dropped before it reaches the device.
        """
        import diffusers

        # 1. Resolve the settings first: a typo fails before gigabytes are read
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        scheduler_cls = resolve_scheduler(settings.scheduler) if settings.scheduler else None
        offload = settings.cpu_offload and device.startswith("cuda")
        if settings.cpu_offload and not offload:
            log.warning("model.cpu_offload applies to cuda devices only; ignored on %s", device)

        # 2. Load the components
        log.info("loading model %s (device %s, dtype %s)", settings.id, device, dtype_name(dtype))
        start = time.perf_counter()
        pipe = diffusers.AutoPipelineForText2Image.from_pretrained(settings.id, **dtype_kwarg(dtype))

        # 3. Swap the scheduler, keeping the model's noise schedule
        if scheduler_cls is not None:
            use_scheduler(pipe, scheduler_cls)

        # 4. Its family (from the class and config, after the scheduler swap: LCM changes the preset)
        family = identify(facts_of(pipe))

        # 5. The safety checker: kept (generate() runs it on a copy of the images) or dropped;
        #    without one, the image classifier checks the tiles
        checker_state = keep_or_drop_checker(pipe, wanted=safety_checker)
        checks: ImageClassifier | None = None
        if not has_checker(pipe) and safety_checker and classifier is not None:
            checks = classifier()
            checker_state = checks.description

        # 6. Place it, then the speed options (none changes what a seed draws)
        if offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        speed = apply_speed_options(pipe, settings, family, offload=offload)

        info = ModelInfo(
            model=settings.id,
            device=device,
            dtype=dtype_name(dtype),
            scheduler=type(pipe.scheduler).__name__,
            safety_checker=has_checker(pipe) or checks is not None,
            speed=speed,
            family=family.name,
        )
        log.info(
            "loaded model %s in %.1f s: %s (%s) on %s%s, %s, scheduler %s, safety check %s, speed options %s",
            info.model,
            time.perf_counter() - start,
            type(pipe).__name__,
            family.label,
            info.device,
            " (model cpu offload)" if offload else "",
            info.dtype,
            info.scheduler,
            checker_state,
            ", ".join(speed) or "none",
        )
        return cls(pipe, info, family, classifier=checks)

    def warm_up(self, sizes: Sequence[tuple[int, int]], *, steps: int = 2) -> float:
        """Run each size once with 4 tiles and once with 1, so compiled kernels exist before any member asks.

        Only needed with ``model.compile``; returns the seconds it took. Blocking (worker thread).
        """
        start = time.perf_counter()
        for width, height in sizes:
            for tiles in (4, 1):
                params = GenParams(
                    tiles=tuple(Tile("warm-up", seed) for seed in range(tiles)),
                    negative="",
                    steps=steps,
                    guidance=self.family.guidance,
                    width=width,
                    height=height,
                )
                self.generate(params)
        elapsed = time.perf_counter() - start
        log.info("warmed up %d size(s) in %.1f s", len(sizes), elapsed)
        return elapsed

    # --- prompts (a bot.engine.backend.PromptReader) -------------------------------------------

    @property
    def prompt_limit(self) -> PromptLimit:
        """Where this model's reading encoder cuts a prompt (a :class:`bot.engine.backend.PromptReader`)."""
        return self._prompts

    @property
    def max_prompt_tokens(self) -> int:
        """The reading encoder's context, specials included (77 for SD 1.x, 512 for FLUX.1-dev)."""
        return self._prompts.max_prompt_tokens

    def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the tokenizer will cut (beyond :attr:`max_prompt_tokens`), or None.

        Members should be told what was dropped. Cheap and safe to call from any thread.
        """
        return self._prompts.prompt_overflow(prompt)

    # --- generation --------------------------------------------------------------------------

    def check_inputs(self, params: GenParams) -> None:
        """Raise ``ValueError`` naming the field when ``params`` cannot be run by this model."""
        if not params.tiles:
            raise ValueError("params.tiles: need at least one tile")
        if len(params.tiles) > MAX_TILES:
            raise ValueError(f"params.tiles: at most {MAX_TILES} tiles per call, got {len(params.tiles)}")
        for i, tile in enumerate(params.tiles):
            if not isinstance(tile.prompt, str):
                raise ValueError(f"params.tiles[{i}].prompt: expected a string, got {type(tile.prompt).__name__}")
            if not 0 <= tile.seed < SEED_LIMIT:
                raise ValueError(f"params.tiles[{i}].seed: must be in 0..{SEED_LIMIT - 1}, got {tile.seed}")
        multiple = self.family.size_multiple
        for name in ("width", "height"):
            value = getattr(params, name)
            if value < multiple or value % multiple:
                raise ValueError(
                    f"params.{name}: must be a positive multiple of {multiple} for {self.family.label}, got {value}"
                )
        if params.steps < 1:
            raise ValueError(f"params.steps: must be at least 1, got {params.steps}")
        if not math.isfinite(params.guidance):
            raise ValueError(f"params.guidance: must be a finite number, got {params.guidance}")

    def generate(
        self,
        params: GenParams,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
        on_preview: PreviewCallback | None = None,
        preview_every: int = 0,
    ) -> GenerationOutput:
        """Run one batched call: image *i* from ``params.tiles[i]`` (its prompt, its seed). Blocking.

        The guidance, negative prompt and sequence length reach the pipeline as its family takes
        them (:func:`bot.diffusion.families.call_arguments`).
        ``on_step(n, params.steps)`` is called after each step, ``n = 1 .. params.steps``;
        ``should_stop()`` is polled before the run and after each step, and a true answer ends
        the run at the next step with :class:`bot.jobs.RenderCancelled`. With ``preview_every > 0``,
        ``on_preview(n, image)`` gets a cheap preview of the batch (:func:`bot.diffusion.preview.latents_to_preview`)
        after every ``preview_every``-th step but the last; previews never change the images,
        and one that fails is logged and skipped. All callbacks run in the calling thread.

        When the model has a safety checker and it is on, ``nsfw[i]`` is its verdict on image
        *i* (without one, the image classifier's); the images are returned as drawn either way.
        """
        import torch

        # 1. Check inputs
        self.check_inputs(params)
        if preview_every < 0:
            raise ValueError(f"preview_every: must be 0 (off) or more, got {preview_every}")
        n = len(params.tiles)
        reporter = StepReporter(
            params.steps,
            on_step,
            should_stop,
            on_preview if self.family.preview else None,
            preview_every if self.family.preview else 0,
            family=self.family,
            size=(params.width, params.height),
        )

        with self._lock:
            if reporter.stop_requested():
                raise RenderCancelled("stopped before the first step")

            # 2. One CPU generator per tile, even when seeds repeat (a refine job): the initial
            #    noise of tile i depends on its seed only, whatever the batch and the device.
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in params.seeds]

            # 3. One batched call, without diffusers' own safety check (it would black images out)
            start = time.perf_counter()
            arguments = call_arguments(
                self.family, self._accepted, count=n, negative=params.negative, guidance=params.guidance
            )
            with without_builtin_checker(self._pipe):
                output = self._pipe(
                    prompt=params.prompts,
                    generator=generators,
                    num_inference_steps=params.steps,
                    width=params.width,
                    height=params.height,
                    **arguments,
                    **reporter.callback_arguments(self._accepted, self._pipe),
                )

            # 4. Interrupted? (diffusers still decodes what it has; those images are dropped)
            if reporter.cancelled:
                raise RenderCancelled(f"stopped after {reporter.reported} of {params.steps} steps")

            # 5. The safety verdicts (the model's checker, else the classifier), the images left as they are
            images = list(output.images)
            nsfw = [False] * n
            if self._checks:
                nsfw = run_checker(self._pipe.safety_checker, self._pipe.feature_extractor, images)
            elif self._classifier is not None:
                nsfw = self._classifier.flags(images)
            elapsed = time.perf_counter() - start

        if any(nsfw):
            flagged = [i + 1 for i, flag in enumerate(nsfw) if flag]
            log.info("safety checker flagged tile(s) %s of %d; the originals are kept", flagged, n)
        log.debug("generated %d image(s) in %.2f s (%d steps)", n, elapsed, params.steps)
        return GenerationOutput(images=images, nsfw=nsfw, elapsed=elapsed)
