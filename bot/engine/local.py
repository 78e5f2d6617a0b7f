"""The in-process backend: one worker thread per device, each owning that device's renderer.

The renderer (and so its diffusers pipeline, whose scheduler is stateful and not thread-safe)
lives in its device's thread; everything else — the queue, positions, cancellation, the events
of every job — lives on the event loop. Nothing here blocks the loop: the render runs in the
device's thread and reports back through ``loop.call_soon_threadsafe``.

The bot runs one (``[executor] backend = "local"``), and so does every Redis worker process.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

from bot.config import ExecutorSettings, SafetySettings, Settings
from bot.engine.backend import Backend, ModelInfo
from bot.engine.events import Done, Failed, JobHandle, Loading, Preview, Progress, Started, StopReason
from bot.jobs import Job, JobResult, RenderCancelled
from bot.logs import about_job
from bot.texts import Text

if TYPE_CHECKING:
    from bot.diffusion.classifier import ImageClassifier
    from bot.diffusion.progress import PreviewCallback, StepCallback, StopCheck
    from bot.diffusion.shelf import LoadingCallback
    from bot.engine.models import Catalogue
    from bot.monitoring.observer import Observer

log = logging.getLogger(__name__)


class Renderer(Protocol):
    """Turns a job into a result, blocking, in its device's thread.

    :class:`bot.diffusion.renderer.PipelineRenderer` is the one the bot uses.
    """

    @property
    def info(self) -> ModelInfo: ...

    def render(
        self,
        job: Job,
        on_step: StepCallback,
        should_stop: StopCheck,
        on_preview: PreviewCallback | None = None,
        on_load: LoadingCallback | None = None,
    ) -> JobResult: ...


RendererFactory = Callable[[], Renderer]
"""Builds a renderer (loads the model). Called once, in the device's own thread."""


class _Device:
    """One worker thread and the renderer that lives in it."""

    def __init__(self, name: str, factory: RendererFactory) -> None:
        self.name = name
        self.factory = factory
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seedgrid-{name}")
        self.renderer: Renderer | None = None
        self.busy_with: JobHandle | None = None
        self.idle = asyncio.Event()
        self.idle.set()


class LocalBackend(Backend):
    """The shared :class:`Backend` front in front of one worker thread per device."""

    def __init__(self, factories: dict[str, RendererFactory], settings: ExecutorSettings | None = None) -> None:
        if not factories:
            raise ValueError("a local backend needs at least one device")
        super().__init__(settings)
        self._devices = [_Device(name, factory) for name, factory in factories.items()]
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, catalogue: Catalogue, *, device: str | None = None, observer: Observer | None = None
    ) -> LocalBackend:
        """The models of ``catalogue`` on ``device`` (default ``model.device``); :meth:`start` loads the default one."""
        from bot.diffusion.renderer import PipelineRenderer  # torch and diffusers load in the device thread

        where = device or settings.model.device
        models = {preset.name: replace(preset.load, device=where) for preset in catalogue}
        load = partial(
            PipelineRenderer.load,
            models,
            preview_every=settings.executor.preview_every,
            safety_checker=settings.safety.checker,
            classifier=classifier_factory(settings.safety, where),
            warm_up={preset.name: [(size.width, size.height) for size in preset.sizes] for preset in catalogue},
            memory_budget=settings.model.memory_budget,
            observer=observer,
            upscaler=None if catalogue.upscaler is None else replace(catalogue.upscaler.load, device=where),
        )
        return cls({where: load}, settings.executor)

    async def start(self) -> None:
        """Load every device's renderer in its own thread, then start taking jobs."""
        loop = asyncio.get_running_loop()
        for device in self._devices:
            started = time.perf_counter()
            device.renderer = await loop.run_in_executor(device.thread, device.factory)
            log.info("device %s ready in %.1f s", device.name, time.perf_counter() - started)
            self._tasks.append(asyncio.create_task(self._work(device), name=f"seedgrid-worker-{device.name}"))

    @property
    def running(self) -> list[Job]:
        return [d.busy_with.job for d in self._devices if d.busy_with is not None]

    @property
    def info(self) -> ModelInfo | None:
        renderers = self._renderers()
        return renderers[0].info if renderers else None

    def _renderers(self) -> list[Renderer]:
        return [d.renderer for d in self._devices if d.renderer is not None]

    # --- shutdown (the order is Backend.close's) ---

    def _running_ends(self) -> list[Awaitable[object]]:
        return [d.idle.wait() for d in self._devices if d.busy_with is not None]

    def _let_go_running(self) -> None:
        for device in self._devices:
            if device.busy_with is not None:
                device.busy_with.stop(StopReason.SHUTDOWN)

    async def _shut_down(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for device in self._devices:
            await loop.run_in_executor(None, device.thread.shutdown, True)

    # --- running jobs ---

    async def _work(self, device: _Device) -> None:
        while (handle := await self._next()) is not None:
            device.busy_with = handle
            device.idle.clear()
            try:
                with about_job(handle.job.id):  # log lines, the device thread's too, say which job
                    await self._run(device, handle)
            finally:
                device.busy_with = None
                device.idle.set()
                self._turn_over(handle)

    async def _run(self, device: _Device, handle: JobHandle) -> None:
        loop = asyncio.get_running_loop()
        renderer = device.renderer
        assert renderer is not None
        handle.emit(Started())
        started = time.perf_counter()

        def on_step(step: int, total: int) -> None:
            loop.call_soon_threadsafe(handle.emit, Progress(step, total, time.perf_counter() - started))

        def on_preview(step: int, image: bytes) -> None:
            loop.call_soon_threadsafe(handle.emit, Preview(step, image))

        def on_load(model: str) -> None:
            loop.call_soon_threadsafe(handle.emit, Loading(model))

        timeout = self.settings.job_timeout
        timer = loop.call_later(timeout, handle.stop, StopReason.TIMEOUT)
        try:
            result = await loop.run_in_executor(
                device.thread,
                contextvars.copy_context().run,  # the job's log context goes to the device thread
                renderer.render,
                handle.job, on_step, handle.should_stop, on_preview, on_load,
            )  # fmt: skip
        except RenderCancelled:
            if handle.stop_reason is StopReason.TIMEOUT:
                log.warning("job %d stopped: over the %.0f s time limit", handle.job.id, timeout)
            handle.emit(handle.stopped_outcome(timeout))
        except Exception as exc:
            log.exception("job %d failed on %s", handle.job.id, device.name)
            handle.emit(Failed(describe_failure(exc)))
        else:
            log.info("job %d done on %s in %.2f s", handle.job.id, device.name, result.elapsed)
            handle.emit(Done(result))
        finally:
            timer.cancel()


def classifier_factory(safety: SafetySettings, device: str) -> Callable[[], ImageClassifier] | None:
    """What makes ``[safety] classifier`` for a device (called in its thread, only for a model without a
    safety checker), or None when the classifier is off."""
    if not safety.checker or not safety.classifier:
        return None

    def make() -> ImageClassifier:
        from bot.diffusion.classifier import ImageClassifier
        from bot.diffusion.devices import resolve_device

        try:
            return ImageClassifier.load(
                safety.classifier,
                labels=safety.classifier_labels,
                threshold=safety.classifier_threshold,
                device=resolve_device(device),
            )
        except Exception as exc:
            raise RuntimeError(
                f"the NSFW image classifier {safety.classifier!r} could not be loaded ({exc}); "
                'set [safety] classifier = "" to run models without a safety checker unchecked'
            ) from exc

    return make


def describe_failure(exc: BaseException) -> Text:
    """A member-facing reason: clear for bad input, discreet for internal errors."""
    if isinstance(exc, ValueError):
        return Text("text.verbatim", text=str(exc))
    if "OutOfMemory" in type(exc).__name__:
        return Text("failed.out_of_memory")
    return Text("failed.internal")
