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
from collections.abc import Sequence

from bot.config import ModelSettings
from bot.diffusion.pipeline import GenerationOutput, Pipeline
from bot.diffusion.progress import PreviewCallback, StepCallback, StopCheck
from bot.engine.backend import ModelInfo
from bot.imaging.grid import compose_grid, encode_png
from bot.imaging.tiles import Tiles
from bot.jobs import GenParams, Job, JobResult

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
    """Owns one loaded pipeline; create it in the worker thread that will use it.

    It is the local backend's :class:`bot.engine.local.Renderer`. ``preview_every``: send a preview
    of the tiles to ``render``'s ``on_preview`` every that many steps (0 = never).
    """

    def __init__(self, pipeline: Pipeline, *, preview_every: int = 0) -> None:
        if preview_every < 0:
            raise ValueError(f"preview_every: must be 0 (off) or more, got {preview_every}")
        self.pipeline = pipeline
        self.preview_every = preview_every

    @classmethod
    def load(
        cls,
        settings: ModelSettings,
        *,
        preview_every: int = 0,
        safety_checker: bool = True,
        warm_up: Sequence[tuple[int, int]] = (),
    ) -> PipelineRenderer:
        """Load the model (blocking). ``safety_checker`` is ``[safety] checker``: see :meth:`Pipeline.load`.

        With ``model.compile`` the ``warm_up`` sizes are run once each here, in the worker thread at
        start-up, so that no member waits for a compilation.
        """
        pipeline = Pipeline.load(settings, safety_checker=safety_checker)
        if settings.compile and warm_up:
            pipeline.warm_up(warm_up)
        return cls(pipeline, preview_every=preview_every)

    @property
    def info(self) -> ModelInfo:
        return self.pipeline.info

    @property
    def prompt_reader(self) -> Pipeline:
        """Where the model cuts prompts (a :class:`bot.engine.backend.PromptReader`): the pipeline itself."""
        return self.pipeline

    def render(
        self,
        job: Job,
        on_step: StepCallback,
        should_stop: StopCheck,
        on_preview: PreviewCallback | None = None,
    ) -> JobResult:
        # 1. one batched pipeline call, one CPU generator per tile (split on out-of-memory)
        params = job.request.params()
        progress = _Progress(on_step, len(params.tiles))
        output = self._generate(params, 0, progress, should_stop, on_preview)  # RenderCancelled when stopped
        # 2. the numbered grid, encoded here rather than on the event loop (the tiles only when asked for)
        grid = compose_grid(output.images)
        return JobResult(
            job_id=job.id,
            tiles=job.tiles,
            grid_png=encode_png(grid),
            images=Tiles(output.images),
            elapsed=output.elapsed,
            nsfw=tuple(output.nsfw),
        )

    def _generate(
        self,
        params: GenParams,
        first: int,
        progress: _Progress,
        should_stop: StopCheck,
        on_preview: PreviewCallback | None,
    ) -> GenerationOutput:
        """Tiles ``first ..`` of the job in one call, or, when that runs out of memory, in two halves.

        Previews show the whole grid, so only a call with every tile of the job sends them.
        """
        count = len(params.tiles)
        whole = count == progress.tiles
        start = time.perf_counter()
        try:
            return self.pipeline.generate(
                params,
                on_step=progress.part(first, count),
                should_stop=should_stop,
                on_preview=on_preview if whole else None,
                preview_every=self.preview_every if whole else 0,
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
        # out of the except block: the failed call's frames (and their tensors) are unreachable now
        free_memory()
        head, tail = params.tiles[:half], params.tiles[half:]
        left = self._generate(dataclasses.replace(params, tiles=head), first, progress, should_stop, None)
        right = self._generate(dataclasses.replace(params, tiles=tail), first + half, progress, should_stop, None)
        return GenerationOutput(
            images=left.images + right.images,
            nsfw=left.nsfw + right.nsfw,
            elapsed=time.perf_counter() - start,  # the member waited for the failed attempt too
        )
