"""The models members can pick: each configured model with its family and the preset that follows from both.

:meth:`Catalogue.resolve` reads each model's ``model_index.json`` (no weights) to learn its family
(:mod:`bot.diffusion.families`), then settles every value a job needs once, at start-up:

* steps and guidance: ``[[models]]`` entry → ``[generation] default_*`` (when set) → the family's preset;
* guidance bounds: the family's, narrowed by the entry's and by ``[generation]``'s (the file's are the ceiling);
* sizes: the entry's → ``[generation] sizes`` → the family's, each checked against the family's size multiple;
* the default negative prompt: the entry's → ``[generation] default_negative``.

The cogs and the CLI read a :class:`ModelPreset` to fill in what a member left empty and to say
what a model ignores; the devices read its load settings.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bot.config import ConfigError, ModelEntry, ModelSettings, Settings, Size
from bot.diffusion.families import GENERIC, Family, read_family

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelPreset:
    """One configured model, resolved: what to load and the defaults and bounds of its jobs."""

    name: str
    id: str
    family: Family
    load: ModelSettings
    """What its device loads (``[model]``'s device and speed options, the entry's id and overrides)."""
    steps: int
    min_steps: int
    max_steps: int
    guidance: float
    min_guidance: float
    max_guidance: float
    negative: str
    sizes: tuple[Size, ...]

    @property
    def label(self) -> str:
        """What members read in the model picker and the embed: ``name (family)``."""
        return f"{self.name} ({self.family.label})"

    def size(self, name: str | None) -> Size:
        """The named size, or the default (first) one; ``KeyError`` for a name this model does not offer."""
        if name is None:
            return self.sizes[0]
        for size in self.sizes:
            if size.name == name:
                return size
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class UpscalerPreset:
    """The dedicated upscaler of ``[upscale] model``, resolved: the factor its kind enlarges by (its pipeline class,
    from its ``model_index.json``), what to load, and the settings of its call."""

    id: str
    factor: int
    load: ModelSettings
    """``[model]``'s device, dtype and offload, with the upscaler's id."""
    steps: int
    guidance: float
    noise_level: int


class Catalogue:
    """The configured models, the default first, and the dedicated upscaler when there is one."""

    def __init__(self, presets: tuple[ModelPreset, ...], *, upscaler: UpscalerPreset | None = None) -> None:
        if not presets:
            raise ValueError("a catalogue needs at least one model")
        self._presets = {preset.name: preset for preset in presets}
        self.upscaler = upscaler

    @classmethod
    def resolve(cls, settings: Settings, *, families: dict[str, Family] | None = None) -> Catalogue:
        """Every model of ``settings`` with its family and preset. Blocking (reads small config files).

        ``families`` gives the family of a model id that is already known (a loaded pipeline);
        the others are read from their ``model_index.json``. Raises :class:`ConfigError` naming the
        key when a model's sizes do not suit its family; a model whose index cannot be read gets
        the generic family, with a warning (its device will say more when it loads it).
        """
        presets = []
        for i, entry in enumerate(settings.model_entries):
            load = entry.settings(settings.model)
            family = (families or {}).get(entry.id) or _family_of(load)
            key = f"models[{i}]" if settings.models else "model"
            presets.append(_preset(settings, entry, load, family, key))
        return cls(tuple(presets), upscaler=resolve_upscaler(settings))

    @property
    def default(self) -> ModelPreset:
        return next(iter(self._presets.values()))

    @property
    def names(self) -> list[str]:
        return list(self._presets)

    def __iter__(self) -> Iterator[ModelPreset]:
        return iter(self._presets.values())

    def __len__(self) -> int:
        return len(self._presets)

    def get(self, name: str) -> ModelPreset | None:
        """The model called ``name`` (``""``: the default), or None when no such model is configured."""
        return self.default if not name else self._presets.get(name)

    def only(self, names: Iterable[str]) -> Catalogue:
        """The models called ``names``, in this catalogue's order (so its default first when kept): what a
        worker started with ``--models`` serves. ``KeyError`` naming the first unknown name."""
        wanted = list(names)
        for name in wanted:
            if name not in self._presets:
                raise KeyError(name)
        return Catalogue(tuple(preset for preset in self if preset.name in wanted), upscaler=self.upscaler)

    @property
    def size_names(self) -> list[Size]:
        """One size per name across all models, in first-seen order (the /imagine choices)."""
        seen: dict[str, Size] = {}
        for preset in self:
            for size in preset.sizes:
                seen.setdefault(size.name, size)
        return list(seen.values())


def resolve_upscaler(settings: Settings) -> UpscalerPreset | None:
    """``[upscale] model`` resolved (None when empty: the hires pass). Blocking (reads its ``model_index.json``);
    :class:`ConfigError` when that cannot be read or names a pipeline that is not an upscaler."""
    from bot.diffusion.upscaler import NotAnUpscalerError, upscaler_kind

    upscale = settings.upscale
    if not upscale.model:
        return None
    try:
        _, factor = upscaler_kind(upscale.model)
    except NotAnUpscalerError as exc:
        raise ConfigError(f"upscale.model: {upscale.model} is not an upscaler: {exc}") from None
    except Exception as exc:  # no such folder, offline and not in the Hub cache, a typo in a Hub id
        raise ConfigError(f"upscale.model: cannot read the model index of {upscale.model}: {exc}") from None
    load = dataclasses.replace(settings.model, id=upscale.model, scheduler="", compile=False, quantize="")
    return UpscalerPreset(
        id=upscale.model,
        factor=factor,
        load=load,
        steps=upscale.steps,
        guidance=upscale.guidance,
        noise_level=upscale.noise_level,
    )


def _family_of(load: ModelSettings) -> Family:
    try:
        return read_family(load.id, scheduler=load.scheduler)
    except Exception as exc:  # offline and not cached, a typo: the device's load will say it clearly
        log.warning("cannot read the model index of %s (%s); treating it as a generic pipeline for now", load.id, exc)
        return GENERIC


def _preset(settings: Settings, entry: ModelEntry, load: ModelSettings, family: Family, key: str) -> ModelPreset:
    gen = settings.generation
    steps = entry.steps or gen.default_steps or family.steps
    if not gen.min_steps <= steps <= gen.max_steps:
        raise ConfigError(
            f"{key}.steps: {entry.name} ({family.label}) would default to {steps} steps, outside "
            f"generation.min_steps..max_steps ({gen.min_steps}..{gen.max_steps}); set its steps"
        )
    low = max(gen.min_guidance, entry.min_guidance if entry.min_guidance is not None else family.min_guidance)
    high = min(gen.max_guidance, entry.max_guidance if entry.max_guidance is not None else family.max_guidance)
    if low > high:
        raise ConfigError(f"{key}.max_guidance: {entry.name}'s guidance range {low}..{high} is empty")
    guidance = next(g for g in (entry.guidance, gen.default_guidance, family.guidance) if g is not None)
    if family.uses_guidance and not low <= guidance <= high:
        raise ConfigError(f"{key}.guidance: {guidance} is outside {entry.name}'s range {low}..{high}")
    sizes = entry.sizes or gen.sizes or tuple(Size(name, width, height) for name, width, height in family.sizes)
    where = f"{key}.sizes" if entry.sizes else "generation.sizes" if gen.sizes else None
    for i, size in enumerate(sizes):
        for dim in ("width", "height"):
            value = getattr(size, dim)
            if value % family.size_multiple:
                place = f"{where}[{i}].{dim}" if where else key
                raise ConfigError(
                    f"{place}: {entry.name} is {family.label}, whose sizes must be multiples of "
                    f"{family.size_multiple}; {size.name} has {dim} {value}"
                )
    return ModelPreset(
        name=entry.name,
        id=entry.id,
        family=family,
        load=load,
        steps=steps,
        min_steps=gen.min_steps,
        max_steps=gen.max_steps,
        guidance=guidance if family.uses_guidance else 0.0,
        min_guidance=low,
        max_guidance=high,
        negative=entry.negative if entry.negative is not None else gen.default_negative,
        sizes=sizes,
    )
