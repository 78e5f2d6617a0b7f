"""The models one device keeps loaded: as many as its memory budget holds, least recently used unloaded first.

A device serves every configured model; loading one takes seconds to minutes, so the ones it has
used stay warm while they fit in ``[model] memory_budget`` (GiB of weights). With a budget of 0 a
device holds one model at a time. What a model weighs is measured once it is loaded
(:attr:`bot.diffusion.pipeline.Pipeline.weight_bytes`); before its first load, the size of a local
folder's weight files stands in for it, so that room is made before the load rather than after.

Owned by one device thread, like the pipelines it holds: not thread-safe, and blocking.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from bot.config import ModelSettings, shorthand_name

if TYPE_CHECKING:
    from bot.diffusion.pipeline import Pipeline
    from bot.diffusion.upscaler import Upscaler

log = logging.getLogger(__name__)

GIB = 1024**3
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

LoadModel = Callable[[ModelSettings], "Pipeline"]
LoadUpscaler = Callable[[ModelSettings], "Upscaler"]
UPSCALER = ":upscaler"
"""The shelf's name for the upscaler (``[upscale] model``): no model name starts with ``:``."""


class _Weighed(Protocol):
    @property
    def weight_bytes(self) -> int: ...


_Held = TypeVar("_Held", bound=_Weighed)
LoadingCallback = Callable[[str], None]
"""``on_load(name)``: the model called ``name`` is about to be loaded for the job at hand."""


class UnknownModelError(ValueError):
    """A job names a model this device does not serve (the message is for the member)."""


class Shelf:
    """The pipelines of one device, by configured model name; the first model is the default."""

    def __init__(
        self,
        models: Mapping[str, ModelSettings],
        load: LoadModel,
        *,
        budget_gib: float = 0.0,
        upscaler: ModelSettings | None = None,
        load_upscaler: LoadUpscaler | None = None,
    ) -> None:
        """``upscaler``: the dedicated upscaler's load settings (``[upscale] model``), loaded by ``load_upscaler``
        when a job first needs it, and held, counted and unloaded like a model."""
        if not models:
            raise ValueError("a shelf needs at least one model")
        if upscaler is not None and load_upscaler is None:
            raise ValueError("an upscaler needs a way to load it")
        self._models = dict(models)
        self._load = load
        self._upscaler = upscaler
        self._load_upscaler = load_upscaler
        self._budget = int(budget_gib * GIB)
        self._loaded: OrderedDict[str, _Weighed] = OrderedDict()  # least recently used first
        self._weights: dict[str, int] = {}
        self.last: Pipeline | None = None
        """The pipeline used last (what the device reports about itself)."""

    @classmethod
    def holding(cls, pipeline: Pipeline) -> Shelf:
        """A shelf with one model, already loaded (named as ``[model] id`` would name it)."""
        name = shorthand_name(pipeline.info.model)
        shelf = cls({name: ModelSettings(id=pipeline.info.model)}, _already_loaded)
        shelf._loaded[name] = shelf.last = pipeline
        return shelf

    @property
    def default(self) -> str:
        return next(iter(self._models))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    @property
    def loaded(self) -> tuple[str, ...]:
        """The models held now, least recently used first (the upscaler is not a model)."""
        return tuple(name for name in self._loaded if name in self._models)

    @property
    def upscaler_id(self) -> str:
        """The dedicated upscaler's Hub id or folder; empty when there is none (the hires pass)."""
        return "" if self._upscaler is None else self._upscaler.id

    def get(self, name: str, on_load: LoadingCallback | None = None) -> Pipeline:
        """The pipeline of model ``name`` (``""``: the default), loading it (and unloading others) when needed."""
        name = name or self.default
        if name not in self._models:
            raise UnknownModelError(f"the model {name!r} is not configured here any more")
        pipeline = self._fetch(name, self._models[name], self._load, on_load)
        self.last = pipeline
        return pipeline

    def get_upscaler(self, on_load: LoadingCallback | None = None) -> Upscaler:
        """The dedicated upscaler, loading it (and unloading others to make room) when needed."""
        if self._upscaler is None or self._load_upscaler is None:
            raise UnknownModelError("no upscaler model is configured here any more")
        return self._fetch(UPSCALER, self._upscaler, self._load_upscaler, on_load)

    def _fetch(
        self,
        name: str,
        settings: ModelSettings,
        load: Callable[[ModelSettings], _Held],
        on_load: LoadingCallback | None,
    ) -> _Held:
        held = self._loaded.get(name)
        if held is None:
            self._make_room(self._expected(name), keep=None)
            if on_load is not None:
                on_load(shorthand_name(settings.id) if name == UPSCALER else name)
            start = time.perf_counter()
            held = load(settings)
            self._weights[name] = held.weight_bytes
            self._loaded[name] = held
            log.info(
                "model %s loaded in %.1f s (%.2f GiB of weights); holding %s",
                name,
                time.perf_counter() - start,
                self._weights[name] / GIB,
                ", ".join(self._loaded),
            )
            self._make_room(0, keep=name)
        self._loaded.move_to_end(name)
        return cast("_Held", held)

    def _expected(self, name: str) -> int:
        """What ``name`` will weigh: measured at its last load, else its local weight files, else 0."""
        if name in self._weights:
            return self._weights[name]
        settings = self._upscaler if name == UPSCALER else self._models[name]
        assert settings is not None
        folder = Path(settings.id).expanduser()
        if not folder.is_dir():
            return 0
        return sum(f.stat().st_size for f in folder.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())

    def _make_room(self, need: int, *, keep: str | None) -> None:
        """Unload least recently used models (never ``keep``) until ``need`` more bytes fit the budget."""
        for name in list(self._loaded):
            if name == keep:
                continue
            held = sum(self._weights.get(n, 0) for n in self._loaded)
            if self._budget > 0 and held + need <= self._budget:
                return
            self._unload(name)

    def _unload(self, name: str) -> None:
        from bot.diffusion.renderer import free_memory

        pipeline = self._loaded.pop(name)
        if self.last is pipeline:
            self.last = None
        del pipeline
        free_memory()
        log.info("model %s unloaded to make room (memory budget %.1f GiB)", name, self._budget / GIB)


def _already_loaded(settings: ModelSettings) -> Pipeline:
    raise RuntimeError(f"{settings.id} was given loaded; it cannot be loaded again once unloaded")
