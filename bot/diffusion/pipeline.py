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
from bot.diffusion.devices import dtype_kwarg, dtype_name, resolve_device, resolve_dtype, weight_bytes
from bot.diffusion.families import Family, Guidance, call_arguments, call_defaults, facts_of, identify
from bot.diffusion.progress import PreviewCallback, StepCallback, StepReporter, StopCheck
from bot.diffusion.prompts import PromptLimit
from bot.diffusion.schedulers import resolve_scheduler, use_scheduler
from bot.diffusion.speed import apply_speed_options, check_quantize
from bot.engine.backend import ModelInfo
from bot.jobs import SEED_LIMIT, GenParams, RenderCancelled, Tile

if TYPE_CHECKING:
    from PIL import Image

    from bot.diffusion.classifier import ImageClassifier

log = logging.getLogger(__name__)

MAX_TILES = 8
"""The most images one call may make (a grid shows four; a refine job makes one per suffix)."""
WARM_BATCHES = (4, 3, 2, 1)
"""The tiles per call a member can cause: a job makes 1-4, an out-of-memory split 2 + 2 or 1 + 1 (3: 2 + 1)."""


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
        reader = getattr(pipe, self.family.prompt_reader, None)  # an unknown pipeline may have no "tokenizer"
        self._prompts = None if reader is None else PromptLimit.for_family(reader, self.family)
        self._checks = has_checker(pipe)
        self._classifier = None if self._checks else classifier
        self.info = info
        self._img2img: Any = None  # built on first use, from the same components (from_pipe)
        self._img2img_accepted: dict[str, Any] = {}

    @property
    def weight_bytes(self) -> int:
        """What the loaded weights take (every torch module of the pipeline: parameters and buffers)."""
        return weight_bytes(self._pipe)

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
        # per-row float8 scales need bfloat16 weights: FP8 makes "auto" bfloat16
        dtype = resolve_dtype(
            "bfloat16" if settings.quantize == "fp8" and settings.dtype == "auto" else settings.dtype, device
        )
        scheduler_cls = resolve_scheduler(settings.scheduler) if settings.scheduler else None
        offload = settings.cpu_offload and device.startswith("cuda")
        if settings.cpu_offload and not offload:
            log.warning("model.cpu_offload applies to cuda devices only; ignored on %s", device)
        check_quantize(settings, device, dtype_name(dtype))  # FP8: Ada/Hopper, bf16, torchao; before any weight

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

    def warm_up(
        self,
        sizes: Sequence[tuple[int, int]],
        *,
        steps: int = 2,
        batches: Sequence[int] = WARM_BATCHES,
        guidance_off: bool = True,
    ) -> float:
        """Run every shape a member can reach once, so that compiled code exists before anyone asks; then seal.

        Each size × each batch of ``batches`` tiles, with guidance on and, for a classifier-free
        guidance family, off too (guidance at or below its threshold runs the denoiser on the plain
        batch instead of the doubled one; ``guidance_off=False`` skips those). Afterwards a shape
        that was not warmed up runs eagerly: it never compiles in service
        (:mod:`bot.diffusion.compiled`). The compile time of each shape is logged. Only needed
        with ``model.compile``; returns the seconds it took. Blocking (worker thread).
        """
        from bot.diffusion.compiled import compiled_parts, warming

        start = time.perf_counter()
        parts = compiled_parts(self._pipe)
        guidances = [self.family.guidance]
        if self.family.guidance_kind is Guidance.CFG:  # both sides of the threshold: doubled batch and plain
            above = self.family.cfg_above
            guidances = [max(self.family.guidance, above + 1.0)] + ([above] if guidance_off else [])
        with warming(parts):
            for width, height in sizes:
                for tiles in batches:
                    for guidance in guidances:
                        params = GenParams(
                            tiles=tuple(Tile("warm-up", seed) for seed in range(tiles)),
                            negative="",
                            steps=steps,
                            guidance=guidance,
                            width=width,
                            height=height,
                        )
                        self.generate(params)
        elapsed = time.perf_counter() - start
        shapes = ", ".join(f"{part.label} {part.shapes}" for part in parts) or "nothing compiled"
        log.info(
            "warmed up %d size(s) × %d batch(es) in %.1f s (shapes: %s)", len(sizes), len(batches), elapsed, shapes
        )
        return elapsed

    # --- prompts (a bot.engine.backend.PromptReader) -------------------------------------------

    @property
    def prompt_limit(self) -> PromptLimit | None:
        """Where this model's reading encoder cuts a prompt (a :class:`bot.engine.backend.PromptReader`);
        None when the pipeline has no tokenizer where its family reads one."""
        return self._prompts

    @property
    def max_prompt_tokens(self) -> int:
        """The reading encoder's context, specials included (77 for SD 1.x, 512 for FLUX.1-dev; 0: unknown)."""
        return 0 if self._prompts is None else self._prompts.max_prompt_tokens

    def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the tokenizer will cut (beyond :attr:`max_prompt_tokens`), or None.

        Members should be told what was dropped. Cheap and safe to call from any thread.
        """
        return None if self._prompts is None else self._prompts.prompt_overflow(prompt)

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

    @property
    def image_to_image(self) -> bool:
        """Whether this model can draw from an image (upscale, vary): its family maps to an image-to-image pipeline."""
        return self.family.image_to_image

    def _image_pipeline(self) -> tuple[Any, dict[str, Any]]:
        """The image-to-image pipeline on the same components (``AutoPipelineForImage2Image.from_pipe``: no
        second copy of the weights), and what its call accepts. Called under the lock."""
        if not self.image_to_image:
            raise ValueError(f"{self.family.label} has no image-to-image pipeline in diffusers")
        if self._img2img is None:
            import diffusers

            pipe = diffusers.AutoPipelineForImage2Image.from_pipe(self._pipe)
            pipe.set_progress_bar_config(disable=True)
            self._img2img, self._img2img_accepted = pipe, call_defaults(type(pipe))
            log.info("image-to-image: %s on the loaded %s", type(pipe).__name__, type(self._pipe).__name__)
        return self._img2img, self._img2img_accepted

    def generate(
        self,
        params: GenParams,
        *,
        on_step: StepCallback | None = None,
        should_stop: StopCheck | None = None,
        on_preview: PreviewCallback | None = None,
        preview_every: int = 0,
        image: Image.Image | None = None,
        strength: float = 0.0,
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

        With ``image`` (of ``params``' size) every tile is an image-to-image pass from it at ``strength``
        (``0 < strength <= 1``; the run takes about ``strength × steps`` steps, at least one), on the
        image-to-image pipeline built from the same weights; no previews then.
        """
        import torch

        # 1. Check inputs
        self.check_inputs(params)
        if preview_every < 0:
            raise ValueError(f"preview_every: must be 0 (off) or more, got {preview_every}")
        n = len(params.tiles)
        steps = params.steps
        if image is not None:
            if not 0 < strength <= 1:
                raise ValueError(f"strength: must be in (0, 1] with an image, got {strength}")
            if image.size != (params.width, params.height):
                raise ValueError(f"image: must be {params.width}×{params.height}, got {image.width}×{image.height}")
            while int(steps * strength) < 1:  # diffusers runs int(steps × strength) steps: at least one
                steps += 1
            on_preview, preview_every = None, 0
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

            # 3. One batched call, without diffusers' own safety check (it would black images out); from
            #    an image, on the image-to-image pipeline (the size is the image's where it takes none)
            start = time.perf_counter()
            pipe, accepted = (self._pipe, self._accepted) if image is None else self._image_pipeline()
            arguments = call_arguments(
                self.family, accepted, count=n, negative=params.negative, guidance=params.guidance
            )
            if image is not None:
                arguments.update(image=[image] * n, strength=strength)
            if "width" in accepted:
                arguments.update(width=params.width, height=params.height)
            with without_builtin_checker(pipe):
                output = pipe(
                    prompt=params.prompts,
                    generator=generators,
                    num_inference_steps=steps,
                    **arguments,
                    **reporter.callback_arguments(accepted, pipe),
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
