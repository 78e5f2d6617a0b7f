"""The diffusers side of seedgrid: load a text-to-image pipeline once, run seeded batches.

This is the only module that touches torch and diffusers. Both are imported inside the
functions that need them, so ``import bot.pipeline`` stays cheap (the CLI's ``--help``, the
cogs' type hints); the executor's worker thread pays for the import on :meth:`Pipeline.load`.

The technique (diffusers guide "Improve image quality with deterministic generation"): one
batched call with a *list* of CPU ``torch.Generator`` objects, one per image, each seeded.
The initial noise of image *i* then depends on its own seed only, so tile *i* of a batch is
the image a one-image run with that prompt and seed would give, on any device; re-running a
seed with a refined prompt keeps the composition.

A :class:`Pipeline` is not meant to be shared between threads: diffusers schedulers are
stateful. :meth:`Pipeline.generate` holds a lock for the whole call so that a mistake
serialises runs instead of corrupting them; :meth:`Pipeline.prompt_overflow` uses its own
copy of the tokenizer and may be called from any thread.

The safety checker (SD 1.x has one) is run by :meth:`Pipeline.generate` itself, after the
diffusers call and on a copy of the images: diffusers' own run would black out what it flags,
and the bot wants the flags *and* the originals, so that the channel's policy
(:func:`bot.safety.apply_policy`: allow, blur, spoiler) decides what members see.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, ModelSettings
from bot.jobs import SEED_LIMIT, GenParams, Tile

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

MAX_TILES = 8
"""The most images one call may make (a grid shows four; a refine job makes one per suffix)."""
SIZE_MULTIPLE = 8
"""Width and height must be multiples of the SD VAE's downsampling factor."""

StepCallback = Callable[[int, int], None]
"""``on_step(done, total)``: ``done`` of ``total`` denoising steps have finished (1-based)."""
StopCheck = Callable[[], bool]
"""``should_stop()``: polled after every step; true stops the run and raises :class:`Cancelled`."""
PreviewCallback = Callable[[int, bytes], None]
"""``on_preview(done, image)``: an encoded preview of the batch after ``done`` steps (see :mod:`bot.preview`)."""


class Cancelled(Exception):  # noqa: N818 - the name reads as what happened, like asyncio.CancelledError
    """``should_stop()`` turned true while the pipeline ran; no images are returned."""


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """What was loaded, for logs, ``/status`` and the CLI's ``check``."""

    model: str
    device: str
    dtype: str
    scheduler: str
    safety_checker: bool = False
    speed: tuple[str, ...] = ()
    """The speed options in effect (e.g. sdpa, channels_last, fuse_qkv, compile)."""
    """Whether every batch goes through the model's safety checker (it has one, and it is on)."""


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The images of one call, in tile order, and whether the safety checker flagged each one.

    The images are the originals, flagged or not: what to show is the channel policy's call.
    """

    images: list[Image.Image]
    nsfw: list[bool]
    elapsed: float
    """Seconds the pipeline call and the safety check took (``time.perf_counter``)."""


# --- settings → torch ---------------------------------------------------------------------------


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
    if setting == "cuda" or setting.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"model.device: {setting!r} was asked for but torch sees no CUDA device "
                "(torch.cuda.is_available() is False; is this a CPU-only torch build?)"
            )
        index = int(setting.partition(":")[2] or 0)
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
        logger.warning("model.dtype float16 on %s is slow and some operations lack float16 kernels", device)
    return dtypes[setting]


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


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained``'s dtype argument: ``dtype`` since diffusers 0.40 (checked on 0.40.0 and 0.42.1),
    where ``torch_dtype`` warns it is deprecated; ``torch_dtype`` before that."""
    import diffusers
    from packaging.version import Version

    name = "dtype" if Version(diffusers.__version__).release >= (0, 40) else "torch_dtype"
    return {name: dtype}


# --- progress and cancellation --------------------------------------------------------------------


class _StepReporter:
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
        from bot.preview import latents_to_preview

        if latents is None or self.on_preview is None:
            return
        try:
            start = time.perf_counter()
            image = latents_to_preview(latents / _noise_scale(pipe.scheduler))
            logger.debug("preview at step %d/%d: %d bytes in %.1f ms", done, self.steps, len(image), _ms(start))
            self.on_preview(done, image)
        except Exception:
            logger.warning("preview at step %d of %d failed; skipped", done, self.steps, exc_info=True)


def _noise_scale(scheduler: Any) -> float:
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


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# --- prompt truncation --------------------------------------------------------------------------


class _Truncation:
    """Where the pipeline's tokenizer cuts a prompt, measured on a private copy of it.

    diffusers keeps the first ``limit - 1`` tokens (the start token included) and appends the
    end token. transformers reconfigures a fast tokenizer's truncation and padding on every
    call, and a concurrent call can fail with ``RuntimeError: Already borrowed``
    (huggingface/tokenizers#537, huggingface/transformers#47085). Hence a private copy: the
    worker thread may be encoding prompts inside a pipeline call while the event loop asks
    about another one.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.limit = int(tokenizer.model_max_length)
        self._lock = threading.Lock()
        self._slow: Any = None
        self._fast: Any = None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:  # a pure-Python tokenizer: share it, under the lock
            self._slow = tokenizer
        else:
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_str(backend.to_str())
            self._fast.no_truncation()
            self._fast.no_padding()

    def overflow(self, prompt: str) -> str | None:
        with self._lock:
            if self._fast is not None:
                encoding = self._fast.encode(prompt)
                if len(encoding.ids) <= self.limit:
                    return None
                # offsets point into the original text: the member sees their own words, not
                # the lower-cased, whitespace-collapsed form the tokenizer works on
                removed = prompt[encoding.offsets[self.limit - 1][0] :]
            else:
                ids = self._slow(prompt, truncation=False).input_ids
                if len(ids) <= self.limit:
                    return None
                removed = self._slow.decode(ids[self.limit - 1 : -1], skip_special_tokens=True)
        return removed.strip() or None


class PromptLimit:
    """Where the model cuts prompts, from its tokenizer alone: for a bot whose model runs elsewhere
    (the redis backend), so members are still told which words were ignored."""

    def __init__(self, tokenizer: Any) -> None:
        self._truncation = _Truncation(tokenizer)

    @classmethod
    def load(cls, settings: ModelSettings) -> PromptLimit | None:
        """The model's tokenizer (a few MB, no weights), or None when it cannot be had. Blocking."""
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(settings.id, subfolder="tokenizer")
        except Exception as exc:  # offline, gated, no tokenizer folder: the notice is a nicety
            logger.warning("no tokenizer for %s (%s): the long-prompt notice is off", settings.id, exc)
            return None
        return cls(tokenizer)

    @property
    def max_prompt_tokens(self) -> int:
        return self._truncation.limit

    def prompt_overflow(self, prompt: str) -> str | None:
        """As :meth:`Pipeline.prompt_overflow`."""
        return self._truncation.overflow(prompt)


# --- safety checker -----------------------------------------------------------------------------


def _checks(pipe: Any) -> bool:
    """Whether ``pipe`` has a safety checker we can run: the checker and its feature extractor."""
    return getattr(pipe, "safety_checker", None) is not None and getattr(pipe, "feature_extractor", None) is not None


@contextmanager
def _without_builtin_checker(pipe: Any) -> Iterator[None]:
    """Run ``pipe`` with its ``safety_checker`` detached, so that diffusers blacks nothing out.

    Safe because one thread owns a :class:`Pipeline` (the executor's worker thread for its
    device) and :meth:`Pipeline.generate` holds the pipeline's lock around this. diffusers
    records components in the pipeline's config, and setting one to None and back leaves
    ``(None, None)`` there, so the config entry is put back as well.
    """
    checker = getattr(pipe, "safety_checker", None)
    if checker is None:
        yield
        return
    entry = pipe.config.get("safety_checker")
    pipe.safety_checker = None
    try:
        yield
    finally:
        pipe.safety_checker = checker
        if entry is not None:
            pipe.register_to_config(safety_checker=entry)


def _run_checker(checker: Any, feature_extractor: Any, images: list[Image.Image]) -> list[bool]:
    """The SD safety checker's verdict on each image, as diffusers' ``run_safety_checker`` gets it.

    The checker zeroes what it flags in the array it is given: it gets a copy. (It also logs
    "A black image will be returned instead"; here the originals are kept.)
    """
    import numpy as np

    features = feature_extractor(images, return_tensors="pt")
    clip_input = features.pixel_values.to(device=checker.device, dtype=checker.dtype)
    copy = np.stack([np.asarray(image) for image in images])
    _, flags = checker(images=copy, clip_input=clip_input)
    return [bool(flag) for flag in flags]


# --- the pipeline -------------------------------------------------------------------------------


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


class Pipeline:
    """A loaded diffusers text-to-image pipeline and the one way seedgrid runs it."""

    def __init__(self, pipe: Any, info: PipelineInfo) -> None:
        # `pipe` is a diffusers pipeline (StableDiffusionPipeline for SD 1.x); typed Any because
        # AutoPipelineForText2Image picks the class at run time.
        self._pipe = pipe
        self._lock = threading.Lock()
        self._truncation = _Truncation(pipe.tokenizer)
        self._checks = _checks(pipe)
        self.info = info

    @classmethod
    def load(cls, settings: ModelSettings, *, safety_checker: bool = True) -> Pipeline:
        """Load ``settings.id`` (a Hub id or a ``save_pretrained`` folder). Blocking: seconds to minutes.

        With ``safety_checker`` (``[safety] checker``) every batch goes through the model's
        safety checker when it has one; with False it is dropped before it reaches the device.
        """
        import diffusers

        # 1. Resolve the settings first: a typo fails before gigabytes are read
        device = resolve_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        scheduler_cls = resolve_scheduler(settings.scheduler) if settings.scheduler else None
        offload = settings.cpu_offload and device.startswith("cuda")
        if settings.cpu_offload and not offload:
            logger.warning("model.cpu_offload applies to cuda devices only; ignored on %s", device)

        # 2. Load the components
        logger.info("loading model %s (device %s, dtype %s)", settings.id, device, _dtype_name(dtype))
        start = time.perf_counter()
        pipe = diffusers.AutoPipelineForText2Image.from_pretrained(settings.id, **_dtype_kwarg(dtype))

        # 3. Swap the scheduler, keeping the model's noise schedule
        if scheduler_cls is not None:
            if scheduler_cls.__name__ not in {c.__name__ for c in getattr(pipe.scheduler, "compatibles", [])}:
                logger.warning(
                    "model.scheduler %s is not listed as compatible with %s",
                    scheduler_cls.__name__,
                    type(pipe.scheduler).__name__,
                )
            pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)

        # 4. The safety checker: kept (generate() runs it on a copy of the images) or dropped
        has_checker = getattr(pipe, "safety_checker", None) is not None
        if has_checker and not safety_checker:
            pipe.safety_checker = None
        elif has_checker and not _checks(pipe):
            logger.warning("the model's safety checker has no feature extractor; images will not be checked")

        # 5. Place it, then the speed options (none changes what a seed draws)
        if offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        speed = apply_speed_options(pipe, settings, offload=offload)

        info = PipelineInfo(
            model=settings.id,
            device=device,
            dtype=_dtype_name(dtype),
            scheduler=type(pipe.scheduler).__name__,
            safety_checker=_checks(pipe),
            speed=speed,
        )
        checker_state = "on" if info.safety_checker else "off" if has_checker else "none in this model"
        logger.info(
            "loaded model %s in %.1f s: %s on %s%s, %s, scheduler %s, safety checker %s, speed options %s",
            info.model,
            time.perf_counter() - start,
            type(pipe).__name__,
            info.device,
            " (model cpu offload)" if offload else "",
            info.dtype,
            info.scheduler,
            checker_state,
            ", ".join(speed) or "none",
        )
        return cls(pipe, info)

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
                    guidance=7.5,
                    width=width,
                    height=height,
                )
                self.generate(params)
        elapsed = time.perf_counter() - start
        logger.info("warmed up %d size(s) in %.1f s", len(sizes), elapsed)
        return elapsed

    # --- prompts -----------------------------------------------------------------------------

    @property
    def max_prompt_tokens(self) -> int:
        """The text encoder's context, start and end tokens included (77 for SD 1.x)."""
        return self._truncation.limit

    def prompt_overflow(self, prompt: str) -> str | None:
        """The part of ``prompt`` the tokenizer will cut (beyond :attr:`max_prompt_tokens`), or None.

        Members should be told what was dropped. Cheap and safe to call from any thread.
        """
        return self._truncation.overflow(prompt)

    # --- generation --------------------------------------------------------------------------

    @staticmethod
    def check_inputs(params: GenParams) -> None:
        """Raise ``ValueError`` naming the field when ``params`` cannot be run."""
        if not params.tiles:
            raise ValueError("params.tiles: need at least one tile")
        if len(params.tiles) > MAX_TILES:
            raise ValueError(f"params.tiles: at most {MAX_TILES} tiles per call, got {len(params.tiles)}")
        for i, tile in enumerate(params.tiles):
            if not isinstance(tile.prompt, str):
                raise ValueError(f"params.tiles[{i}].prompt: expected a string, got {type(tile.prompt).__name__}")
            if not 0 <= tile.seed < SEED_LIMIT:
                raise ValueError(f"params.tiles[{i}].seed: must be in 0..{SEED_LIMIT - 1}, got {tile.seed}")
        for name in ("width", "height"):
            value = getattr(params, name)
            if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
                raise ValueError(f"params.{name}: must be a positive multiple of {SIZE_MULTIPLE}, got {value}")
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

        ``on_step(n, params.steps)`` is called after each step, ``n = 1 .. params.steps``;
        ``should_stop()`` is polled before the run and after each step, and a true answer ends
        the run at the next step with :class:`Cancelled`. With ``preview_every > 0``,
        ``on_preview(n, image)`` gets a cheap preview of the batch (:func:`bot.preview.latents_to_preview`)
        after every ``preview_every``-th step but the last; previews never change the images,
        and one that fails is logged and skipped. All callbacks run in the calling thread.

        When the model has a safety checker and it is on, ``nsfw[i]`` is its verdict on image
        *i*; the images are returned as drawn either way.
        """
        import torch

        # 1. Check inputs
        self.check_inputs(params)
        if preview_every < 0:
            raise ValueError(f"preview_every: must be 0 (off) or more, got {preview_every}")
        n = len(params.tiles)
        reporter = _StepReporter(params.steps, on_step, should_stop, on_preview, preview_every)

        with self._lock:
            if reporter.stop_requested():
                raise Cancelled("stopped before the first step")

            # 2. One CPU generator per tile, even when seeds repeat (a refine job): the initial
            #    noise of tile i depends on its seed only, whatever the batch and the device.
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in params.seeds]

            # 3. One batched call, without diffusers' own safety check (it would black images out)
            start = time.perf_counter()
            with _without_builtin_checker(self._pipe):
                output = self._pipe(
                    prompt=params.prompts,
                    negative_prompt=[params.negative] * n if params.negative.strip() else None,
                    generator=generators,
                    num_inference_steps=params.steps,
                    guidance_scale=params.guidance,
                    width=params.width,
                    height=params.height,
                    callback_on_step_end=reporter,
                    callback_on_step_end_tensor_inputs=["latents"],
                )

            # 4. Interrupted? (diffusers still decodes what it has; those images are dropped)
            if reporter.cancelled:
                raise Cancelled(f"stopped after {reporter.reported} of {params.steps} steps")

            # 5. The safety checker's verdicts, the images left as they are
            images = list(output.images)
            nsfw = [False] * n
            if self._checks:
                nsfw = _run_checker(self._pipe.safety_checker, self._pipe.feature_extractor, images)
            elapsed = time.perf_counter() - start

        if any(nsfw):
            flagged = [i + 1 for i, flag in enumerate(nsfw) if flag]
            logger.info("safety checker flagged tile(s) %s of %d; the originals are kept", flagged, n)
        logger.debug("generated %d image(s) in %.2f s (%d steps)", n, elapsed, params.steps)
        return GenerationOutput(images=images, nsfw=nsfw, elapsed=elapsed)
