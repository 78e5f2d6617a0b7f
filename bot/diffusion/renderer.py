"""The renderer that runs in a device's worker thread: pipeline call → grid → encoded PNGs.

Everything expensive (diffusion, grid composition, PNG encoding) happens here, off the event
loop. The Discord cog and the ``imagine`` command both go through this one function, so the
same job gives the same bytes on either path.

When the device runs out of memory the batch is retried in halves (4 → 2 + 2 → 1 + 1 + …,
only the half that failed is split again). Every tile has its own seeded CPU generator, so a
tile is the same image whichever batch it is drawn in: a split run gives the member the grid
an unsplit run would have given, only later.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from bot.config import ModelSettings, shorthand_name
from bot.diffusion.pipeline import GenerationOutput, Pipeline
from bot.diffusion.progress import PreviewCallback, StepCallback, StopCheck
from bot.diffusion.shelf import LoadingCallback, Shelf, UnknownModelError
from bot.diffusion.upscaler import Upscaler
from bot.engine.backend import ModelInfo
from bot.imaging.grid import compose_grid, encode_png
from bot.imaging.recipe import MAX_DEPTH, Recipe
from bot.imaging.tiles import Tiles
from bot.jobs import GenParams, Job, JobKind, JobRequest, JobResult

if TYPE_CHECKING:
    from bot.diffusion.classifier import ImageClassifier
    from bot.monitoring.observer import Observer

log = logging.getLogger(__name__)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device out-of-memory error: ``torch.cuda.OutOfMemoryError`` (``torch.OutOfMemoryError``
    in newer torch), or a ``RuntimeError`` saying "out of memory" (MPS, older CUDA builds)."""
    import torch

    kinds = tuple(
        kind
        for kind in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
        if isinstance(kind, type)
    )
    if kinds and isinstance(exc, kinds):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory() -> None:
    """Give back what a failed call left behind: unreachable tensors, then the allocator's cache."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if torch.backends.mps.is_available():
        torch.mps.empty_cache()


class _Progress:
    """Maps each sub-batch's ``on_step(n, steps)`` onto the job's ``0 .. steps``, never backwards.

    Tiles ``first .. first+count`` of ``tiles`` at step ``n`` stand for ``first·steps + count·n``
    of the job's ``tiles·steps`` tile-steps. An unsplit run reports exactly the pipeline's steps;
    after a split the bar holds where it was until the retry overtakes it, and the last
    sub-batch's last step is ``(steps, steps)``.
    """

    def __init__(self, on_step: StepCallback, tiles: int) -> None:
        self.on_step = on_step
        self.tiles = tiles
        self.reported = 0

    def part(self, first: int, count: int) -> StepCallback:
        def on_step(done: int, steps: int) -> None:
            overall = (first * steps + count * done) // self.tiles
            if overall > self.reported:
                self.reported = overall
                self.on_step(overall, steps)

        return on_step


class PipelineRenderer:
    """Owns the pipelines of one device (a :class:`bot.diffusion.shelf.Shelf`); create it in the worker
    thread that will use it.

    It is the local backend's :class:`bot.engine.local.Renderer`. ``preview_every``: send a preview
    of the tiles to ``render``'s ``on_preview`` every that many steps (0 = never).
    """

    def __init__(self, shelf: Shelf | Pipeline, *, preview_every: int = 0, observer: Observer | None = None) -> None:
        if preview_every < 0:
            raise ValueError(f"preview_every: must be 0 (off) or more, got {preview_every}")
        self.observer = observer  # metrics: told of every out-of-memory split
        self.shelf = shelf if isinstance(shelf, Shelf) else Shelf.holding(shelf)
        self.preview_every = preview_every
        self._info = self.shelf.get(self.shelf.default).info  # the default model is loaded at start-up

    @classmethod
    def load(
        cls,
        models: ModelSettings | Mapping[str, ModelSettings],
        *,
        preview_every: int = 0,
        safety_checker: bool = True,
        classifier: Callable[[], ImageClassifier] | None = None,
        warm_up: Sequence[tuple[int, int]] | Mapping[str, Sequence[tuple[int, int]]] = (),
        memory_budget: float = 0.0,
        observer: Observer | None = None,
        upscaler: ModelSettings | None = None,
    ) -> PipelineRenderer:
        """Load the default model (blocking); the others, and the dedicated ``upscaler`` (``[upscale] model``,
        loaded on the shelf beside them), load when a job needs them.

        ``models``: the configured models by name, the default first (or one model's settings, named
        as ``[model] id`` names it: :func:`bot.config.shorthand_name`).
        ``safety_checker`` is ``[safety] checker`` (see :meth:`Pipeline.load`); ``classifier`` makes
        the image classifier, once, for the first model without a safety checker of its own. With
        ``model.compile`` each model runs its ``warm_up`` sizes when it loads, in the worker thread,
        so that no member waits for a compilation.
        """
        named = {shorthand_name(models.id): models} if isinstance(models, ModelSettings) else dict(models)
        sizes = warm_up if isinstance(warm_up, Mapping) else dict.fromkeys(named, warm_up)
        made: list[ImageClassifier] = []

        def the_classifier() -> ImageClassifier:  # one per device, shared by its models
            assert classifier is not None
            if not made:
                made.append(classifier())
            return made[0]

        def load_model(settings: ModelSettings) -> Pipeline:
            name = next(n for n, s in named.items() if s is settings)
            loading = time.perf_counter()
            pipeline = Pipeline.load(
                settings, safety_checker=safety_checker, classifier=the_classifier if classifier else None
            )
            if settings.compile and sizes.get(name):
                pipeline.warm_up(sizes[name])
            if observer is not None:
                observer.model_loaded(pipeline.info.device, name, time.perf_counter() - loading)
            return pipeline

        budget = next(iter(named.values())).memory_budget
        shelf = Shelf(
            named, load_model, budget_gib=memory_budget or budget, upscaler=upscaler, load_upscaler=Upscaler.load
        )
        return cls(shelf, preview_every=preview_every, observer=observer)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline used last (the default model's until a job asks for another)."""
        return self.shelf.last or self.shelf.get(self.shelf.default)

    @property
    def info(self) -> ModelInfo:
        last = self.shelf.last
        if last is not None:
            self._info = last.info
        return dataclasses.replace(self._info, models=self.shelf.names, loaded=self.shelf.loaded)

    def render(
        self,
        job: Job,
        on_step: StepCallback,
        should_stop: StopCheck,
        on_preview: PreviewCallback | None = None,
        on_load: LoadingCallback | None = None,
    ) -> JobResult:
        # 1. the job's model (loaded now if this device does not hold it), then one batched pipeline
        #    call, one CPU generator per tile (split on out-of-memory)
        #    (a job drawn from a source tile first draws that tile again from its recipe, enlarged to the
        #    job's size: the image-to-image pass starts from it; a dedicated upscaler enlarges it instead)
        if job.request.upscaler:
            return self._upscale(job, on_step, should_stop, on_load)
        name = job.request.model or self.shelf.default  # "" (older jobs, the CLI): the default model
        pipeline = self.shelf.get(name, on_load)
        # the recipe names the model that drew it, however the job named it
        request = dataclasses.replace(job.request, model=name, model_id=job.request.model_id or pipeline.info.model)
        params = request.params()
        progress = _Progress(on_step, len(params.tiles))
        recipe = Recipe.of(request, family=pipeline.info.family, scheduler=pipeline.info.scheduler)
        start = None
        if recipe.source is not None:
            start = self._draw(pipeline, recipe.source, should_stop).resize(
                (request.width, request.height), Image.Resampling.LANCZOS
            )
        output = self._generate(  # RenderCancelled when stopped
            pipeline, params, 0, progress, should_stop, on_preview, image=start, strength=request.strength
        )
        # 2. the numbered grid (an upscale: the image alone), encoded here rather than on the event loop (the
        #    tiles only when asked for), each PNG with its recipe (bot.imaging.recipe)
        grid = output.images[0] if request.kind is JobKind.UPSCALE else compose_grid(output.images)
        return JobResult(
            job_id=job.id,
            tiles=job.tiles,
            grid_png=encode_png(grid, metadata=recipe.metadata()),
            images=Tiles(output.images, metadata=[recipe.tile(i).metadata() for i in range(1, len(output.images) + 1)]),
            elapsed=output.elapsed,
            nsfw=tuple(output.nsfw),
        )

    def _upscale(
        self, job: Job, on_step: StepCallback, should_stop: StopCheck, on_load: LoadingCallback | None
    ) -> JobResult:
        """A job enlarged by the dedicated upscaler: its source tile drawn again on the job's model, then each of
        the job's tiles (an upscale has one) that tile upscaled with its own prompt and seed, one call each."""
        # 1. the source tile, on the job's model (the reference to its pipeline ends here: the upscaler may need
        #    its room on the shelf)
        request, recipe, source, nsfw = self._source_of(job, should_stop, on_load)
        # 2. the upscaler (loaded now if this device does not hold it), one call per tile, CPU generator
        upscaler = self._upscaler(request.upscaler, on_load)
        start = time.perf_counter()
        images = []
        for tile in request.tiles():
            image = upscaler.upscale(
                source,
                prompt=tile.prompt,
                negative=request.negative,
                seed=tile.seed,
                steps=request.steps,
                guidance=request.guidance,
                noise_level=request.noise_level,
                on_step=on_step,
                should_stop=should_stop,
            )
            if image.size != (request.width, request.height):
                raise ValueError(
                    f"the upscaler made {image.width}×{image.height} of a {source.width}×{source.height} tile, "
                    f"the job asked for {request.width}×{request.height}"
                )
            images.append(image)
        elapsed = time.perf_counter() - start
        # 3. the image (or a grid of them), each PNG with its recipe; the safety verdict is the source tile's
        grid = images[0] if request.kind is JobKind.UPSCALE else compose_grid(images)
        return JobResult(
            job_id=job.id,
            tiles=job.tiles,
            grid_png=encode_png(grid, metadata=recipe.metadata()),
            images=Tiles(images, metadata=[recipe.tile(i).metadata() for i in range(1, len(images) + 1)]),
            elapsed=elapsed,
            nsfw=(nsfw,) * len(images),
        )

    def _source_of(
        self, job: Job, should_stop: StopCheck, on_load: LoadingCallback | None
    ) -> tuple[JobRequest, Recipe, Image.Image, bool]:
        """The job as its recipe names it, that recipe, its source tile drawn again, and that tile's safety verdict."""
        name = job.request.model or self.shelf.default
        pipeline = self.shelf.get(name, on_load)
        request = dataclasses.replace(job.request, model=name, model_id=job.request.model_id or pipeline.info.model)
        recipe = Recipe.of(request, family=pipeline.info.family, scheduler=pipeline.info.scheduler)
        if recipe.source is None:
            raise ValueError("an upscaler job needs the recipe of its source tile")
        output = self._draw_output(pipeline, recipe.source, should_stop)
        return request, recipe, output.images[0], output.nsfw[0]

    def _upscaler(self, upscaler_id: str, on_load: LoadingCallback | None) -> Upscaler:
        """The dedicated upscaler a job (or a recipe in its chain) names, when it is this device's."""
        if upscaler_id != self.shelf.upscaler_id:
            raise UnknownModelError(f"the upscaler {upscaler_id!r} is not configured here any more")
        return self.shelf.get_upscaler(on_load)

    def _draw(self, pipeline: Pipeline, recipe: Recipe, should_stop: StopCheck, depth: int = 0) -> Image.Image:
        """Tile 1 of ``recipe`` drawn again (its own source first, when it has one), without progress."""
        return self._draw_output(pipeline, recipe, should_stop, depth).images[0]

    def _draw_output(
        self, pipeline: Pipeline, recipe: Recipe, should_stop: StopCheck, depth: int = 0
    ) -> GenerationOutput:
        """:meth:`_draw`, with the safety verdict (an upscaler's image: its source tile's)."""
        if depth > MAX_DEPTH:
            raise ValueError("the chain of source tiles is too long")
        if recipe.upscaler and recipe.source is not None:  # enlarged by the upscaler: its source, then it
            below = self._draw_output(pipeline, recipe.source, should_stop, depth + 1)
            tile = recipe.tiles[0]
            image = self._upscaler(recipe.upscaler, None).upscale(
                below.images[0],
                prompt=tile.prompt,
                negative=recipe.negative,
                seed=tile.seed,
                steps=recipe.steps,
                guidance=recipe.guidance,
                noise_level=recipe.noise_level or 0,
                should_stop=should_stop,
            )
            return GenerationOutput(images=[image], nsfw=below.nsfw[:1], elapsed=0.0)
        params = GenParams(
            tiles=recipe.tiles[:1],
            negative=recipe.negative,
            steps=recipe.steps,
            guidance=recipe.guidance,
            width=recipe.width,
            height=recipe.height,
        )
        start = None
        if recipe.source is not None:
            start = self._draw_output(pipeline, recipe.source, should_stop, depth + 1).images[0]
            start = start.resize((recipe.width, recipe.height), Image.Resampling.LANCZOS)
        strength = recipe.strength or 0.0
        return pipeline.generate(params, should_stop=should_stop, image=start, strength=strength)

    def _generate(
        self,
        pipeline: Pipeline,
        params: GenParams,
        first: int,
        progress: _Progress,
        should_stop: StopCheck,
        on_preview: PreviewCallback | None,
        *,
        image: Image.Image | None = None,
        strength: float = 0.0,
    ) -> GenerationOutput:
        """Tiles ``first ..`` of the job in one call, or, when that runs out of memory, in two halves.

        Previews show the whole grid, so only a call with every tile of the job sends them.
        """
        count = len(params.tiles)
        whole = count == progress.tiles
        start = time.perf_counter()
        drawn_from: dict[str, Any] = {} if image is None else {"image": image, "strength": strength}
        try:
            return pipeline.generate(
                params,
                on_step=progress.part(first, count),
                should_stop=should_stop,
                on_preview=on_preview if whole else None,
                preview_every=self.preview_every if whole else 0,
                **drawn_from,
            )
        except Exception as exc:
            if count == 1 or not is_out_of_memory(exc):
                raise
            half = (count + 1) // 2
            log.warning(
                "out of memory drawing tiles %d-%d of %d (%s); freeing memory and retrying them as %d + %d",
                first + 1,
                first + count,
                progress.tiles,
                type(exc).__name__,
                half,
                count - half,
            )
            if self.observer is not None:
                self.observer.oom_split(self.info.device)
        # out of the except block: the failed call's frames (and their tensors) are unreachable now
        free_memory()
        head, tail = params.tiles[:half], params.tiles[half:]
        left = self._generate(
            pipeline, dataclasses.replace(params, tiles=head), first, progress, should_stop, None, **drawn_from
        )
        right = self._generate(
            pipeline, dataclasses.replace(params, tiles=tail), first + half, progress, should_stop, None, **drawn_from
        )
        return GenerationOutput(
            images=left.images + right.images,
            nsfw=left.nsfw + right.nsfw,
            elapsed=time.perf_counter() - start,  # the member waited for the failed attempt too
        )
