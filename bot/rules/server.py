"""A server's own defaults and policies (``/settings``), a member's own defaults (``/preferences``) and daily
allowances by role (``/settings quota``): checked against the file's bounds, and how they apply.

The TOML file decides what only the machine's owner decides (the models, the devices, the limits);
a server may choose, within those limits, the defaults its members get when they leave an option
empty — model, steps, guidance, size, negative prompt —, what happens to flagged tiles in each of its
channels, and how many images a day each role allows. A member may keep defaults of their own, which
come before the server's. Pure functions and frozen data: the engine keeps them, the cogs show and
change them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.config import POLICIES
from bot.engine.models import Catalogue, ModelPreset
from bot.inputs import UserInputError, clean_prompt

DEFAULTS = ("model", "steps", "guidance", "size", "negative")
"""The member defaults a server can set, in the order ``/settings show`` lists them."""
NSFW_PREFIX = "nsfw:"
"""Stored names of channel policies: ``nsfw:<channel id>``."""
QUOTA_PREFIX = "quota:"
"""Stored names of role allowances: ``quota:<role id>`` → images per day."""
DAY = 86400.0


def _rows(rows: Iterable[tuple[str, str]]) -> Iterable[tuple[str, Any]]:
    for name, raw in rows:
        try:
            yield name, json.loads(raw)
        except ValueError:  # a row that no longer reads is skipped
            continue


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a member gets when they leave an option empty; None means "the next layer's"."""

    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    size: str | None = None
    negative: str | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> Defaults:
        """From stored ``(name, JSON value)`` rows."""
        return cls(**{name: value for name, value in _rows(rows) if name in DEFAULTS})


@dataclass(frozen=True, slots=True)
class ServerSettings(Defaults):
    """One server's choices; None (or a missing channel or role) means "as the file says"."""

    nsfw: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    """Channel id → what happens to flagged tiles there: allow | blur | spoiler."""
    quotas: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """Role id → images a member with that role may have drawn per day (UTC)."""

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> ServerSettings:
        values: dict[str, Any] = {}
        nsfw: dict[int, str] = {}
        quotas: dict[int, int] = {}
        for name, value in _rows(rows):
            prefix, _, ident = name.partition(":")
            if f"{prefix}:" == NSFW_PREFIX and ident.isdigit() and value in POLICIES:
                nsfw[int(ident)] = value
            elif f"{prefix}:" == QUOTA_PREFIX and ident.isdigit() and isinstance(value, int):
                quotas[int(ident)] = value
            elif name in DEFAULTS:
                values[name] = value
        return cls(**values, nsfw=MappingProxyType(nsfw), quotas=MappingProxyType(quotas))

    def allowance(self, role_ids: Iterable[int]) -> int | None:
        """Images per day for a member with these roles: the most generous of their roles that have an
        allowance; None (no limit) when none of them has one."""
        allowed = [self.quotas[role] for role in role_ids if role in self.quotas]
        return max(allowed) if allowed else None

    def policy(self, channel_id: int | None, default: str) -> str:
        """What happens to flagged tiles in a channel: the server's choice for it, else ``default`` (the file's)."""
        return self.nsfw.get(channel_id, default) if channel_id is not None else default


def parse_default(name: str, raw: str, models: Catalogue) -> str | int | float:
    """A member default typed by an admin, checked with the rules and bounds of the file (its values are
    the ceiling). Raises :class:`bot.inputs.UserInputError` saying what is allowed."""
    preset = models.default
    text = raw.strip()
    if name == "model":
        if models.get(text) is None or not text:
            raise UserInputError("input.unknown_model", model=text, names=", ".join(models.names))
        return text
    if name == "size":
        names = [size.name for size in models.size_names]
        if text not in names:
            raise UserInputError("input.unknown_size", size=text, model=preset.name, names=", ".join(names))
        return text
    if name == "negative":
        return clean_prompt(text, negative=True)
    if name == "steps":
        try:
            steps = int(text)
        except ValueError:
            raise UserInputError("input.steps_range", min=preset.min_steps, max=preset.max_steps) from None
        if not preset.min_steps <= steps <= preset.max_steps:
            raise UserInputError("input.steps_range", min=preset.min_steps, max=preset.max_steps)
        return steps
    if name == "guidance":
        low = min(p.min_guidance for p in models)
        high = max(p.max_guidance for p in models)
        try:
            guidance = float(text)
        except ValueError:
            raise UserInputError("input.guidance_range", min=low, max=high) from None
        if not math.isfinite(guidance) or not low <= guidance <= high:
            raise UserInputError("input.guidance_range", min=low, max=high)
        return guidance
    raise UserInputError("input.invalid_option")


def chosen_model(layers: Iterable[Defaults], models: Catalogue) -> str | None:
    """The first model the layers name that is still configured (a member's, then the server's)."""
    return next((d.model for d in layers if d.model is not None and models.get(d.model) is not None), None)


def member_options(
    layers: Defaults | Iterable[Defaults],
    preset: ModelPreset,
    *,
    steps: int | None,
    guidance: float | None,
    size: str | None,
    negative: str | None,
) -> tuple[int | None, float | None, str | None, str | None]:
    """What a member gave, with the defaults of ``layers`` (the member's preferences, then the server's)
    filling what they left empty — where the chosen model can take them (a guidance outside its range,
    or a size it does not offer, falls back to the next layer's, then the model's own)."""
    for layer in [layers] if isinstance(layers, Defaults) else layers:
        if steps is None:
            steps = layer.steps
        wanted = layer.guidance
        if guidance is None and wanted is not None and preset.family.uses_guidance:
            guidance = wanted if preset.min_guidance <= wanted <= preset.max_guidance else None
        if size is None and layer.size is not None and any(s.name == layer.size for s in preset.sizes):
            size = layer.size
        if not (negative and negative.strip()):
            negative = layer.negative or negative
    return steps, guidance, size, negative


def period_start(now: float) -> float:
    """When the current allowance period began: midnight UTC of ``now``'s day."""
    return now - now % DAY
