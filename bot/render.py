"""The renderer that runs in a device's worker thread: pipeline call → grid → encoded PNGs.

Everything expensive (diffusion, grid composition, PNG encoding) happens here, off the event
loop. The Discord cog and the ``imagine`` command both go through this one function, so the
same job gives the same bytes on either path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import ModelSettings
from .grid import compose_grid, encode_png
from .jobs import Job, JobResult, RenderCancelled
from .pipeline import Cancelled, Pipeline, PipelineInfo

log = logging.getLogger(__name__)


class PipelineRenderer:
    """Owns one loaded pipeline; create it in the worker thread that will use it."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def load(cls, settings: ModelSettings) -> PipelineRenderer:
        return cls(Pipeline.load(settings))

    @property
    def info(self) -> PipelineInfo:
        return self.pipeline.info

    def render(
        self,
        job: Job,
        on_step: Callable[[int, int], None],
        should_stop: Callable[[], bool],
        on_preview: Callable[[int, bytes], None] | None = None,
    ) -> JobResult:
        # 1. one batched pipeline call, one CPU generator per tile
        try:
            output = self.pipeline.generate(job.request.params(), on_step=on_step, should_stop=should_stop)
        except Cancelled as exc:
            raise RenderCancelled(str(exc)) from None
        # 2. the numbered grid, and every image encoded here rather than on the event loop
        grid = compose_grid(output.images)
        return JobResult(
            job_id=job.id,
            tiles=job.tiles,
            grid_png=encode_png(grid),
            tile_pngs=tuple(encode_png(image) for image in output.images),
            elapsed=output.elapsed,
            nsfw=tuple(output.nsfw),
        )
