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

from bot.config import POLICIES, RefineSettings
from bot.engine.models import Catalogue, ModelPreset
from bot.inputs import UserInputError, clean_prompt, parse_suffixes
from bot.rules.blocklist import REGEX_PREFIX, normalize
from bot.rules.blocklist import _views as views

DEFAULTS = ("model", "steps", "guidance", "size", "negative")
"""The member defaults a server can set, in the order ``/settings show`` lists them."""
NSFW_PREFIX = "nsfw:"
"""Stored names of channel policies: ``nsfw:<channel id>``."""
QUOTA_PREFIX = "quota:"
"""Stored names of role allowances: ``quota:<role id>`` → images per day."""
GPU_PREFIX = "gpu:"
"""Stored names of role GPU allowances: ``gpu:<role id>`` → GPU-seconds per day."""
POLICY_NAMES = ("blocklist", "channels", "roles", "buttons", "suggestions", "private")
"""A server's further policies (``/settings``), stored under these names: extra blocklist entries, the
channels and roles allowed to use the bot, who may press a grid's buttons, the refine form's pre-filled
lines, and whether members may have their results privately."""
BUTTONS = ("anyone", "author")
MAX_BLOCKLIST = 100
"""Extra blocklist entries a server may keep."""
MAX_ENTRY = 200
"""Longest blocklist entry, in characters."""
MAX_LISTED = 50
"""Channels, or roles, a server may list."""
SUGGESTION_SEPARATOR = "|"
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
    gpu_quotas: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """Role id → GPU-seconds a member with that role may use per day (UTC)."""
    blocklist: tuple[str, ...] = ()
    """Blocklist entries of this server, on top of the file's (``[safety] blocklist``)."""
    channels: tuple[int, ...] = ()
    """Channels where the bot works in this server (empty: wherever the file lets it)."""
    roles: tuple[int, ...] = ()
    """Members here need one of these roles (empty: as the file says)."""
    buttons: str | None = None
    """Who may press a grid's buttons here: anyone | author (None: ``access.refine`` of the file)."""
    suggestions: tuple[str, ...] | None = None
    """The refine form's pre-filled lines here (None: ``refine.suggestions`` of the file)."""
    private: bool = False
    """Whether members may have their results privately (``/preferences private``)."""

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> ServerSettings:
        values: dict[str, Any] = {}
        nsfw: dict[int, str] = {}
        quotas: dict[int, int] = {}
        gpu: dict[int, int] = {}
        for name, value in _rows(rows):
            prefix, _, ident = name.partition(":")
            if f"{prefix}:" == NSFW_PREFIX and ident.isdigit() and value in POLICIES:
                nsfw[int(ident)] = value
            elif f"{prefix}:" == QUOTA_PREFIX and ident.isdigit() and isinstance(value, int):
                quotas[int(ident)] = value
            elif f"{prefix}:" == GPU_PREFIX and ident.isdigit() and isinstance(value, int):
                gpu[int(ident)] = value
            elif name in DEFAULTS:
                values[name] = value
            elif name in POLICY_NAMES:
                policy = _policy(name, value)
                if policy is not None:
                    values[name] = policy
        return cls(
            **values, nsfw=MappingProxyType(nsfw), quotas=MappingProxyType(quotas), gpu_quotas=MappingProxyType(gpu)
        )

    def allowance(self, role_ids: Iterable[int]) -> int | None:
        """Images per day for a member with these roles: the most generous of their roles that have an
        allowance; None (no limit) when none of them has one."""
        allowed = [self.quotas[role] for role in role_ids if role in self.quotas]
        return max(allowed) if allowed else None

    def gpu_allowance(self, role_ids: Iterable[int]) -> int | None:
        """GPU-seconds per day for a member with these roles, chosen like :meth:`allowance`."""
        allowed = [self.gpu_quotas[role] for role in role_ids if role in self.gpu_quotas]
        return max(allowed) if allowed else None

    def admits(self, channel_ids: Iterable[int | None], role_ids: Iterable[int]) -> str | None:
        """Whether this server lets the bot be used here (on top of the file's ``[access]``): None, or what
        is missing, ``"channel"`` or ``"role"``. ``channel_ids``: the channel, and a thread's parent channel."""
        if self.channels and not set(self.channels).intersection(channel_ids):
            return "channel"
        if self.roles and not set(self.roles).intersection(role_ids):
            return "role"
        return None

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


def _policy(name: str, value: object) -> object:
    """A stored policy as :class:`ServerSettings` keeps it, or None for a row that no longer reads."""
    if name in ("blocklist", "suggestions"):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return tuple(value) if ok else None  # type: ignore[arg-type]
    if name in ("channels", "roles"):
        ok = isinstance(value, list) and all(isinstance(v, int) for v in value)
        return tuple(value) if ok else None  # type: ignore[arg-type]
    if name == "buttons":
        return value if value in BUTTONS else None
    return value if isinstance(value, bool) else None


def parse_blocklist_entry(raw: str) -> str:
    """An extra blocklist entry typed by an admin, checked with the file's rules for words and phrases (not
    empty, one line, at most :data:`MAX_ENTRY` characters, something a prompt can match). Regular expressions
    (``re:``) stay the file's: they run on the bot's event loop with no time limit, and one server's
    catastrophic pattern would stall every server."""
    entry = raw.strip()
    if not entry or "\n" in entry or "\r" in entry or len(entry) > MAX_ENTRY:
        raise UserInputError("settings.blocklist.bad_entry", max=MAX_ENTRY)
    if entry.lower().startswith(REGEX_PREFIX):
        raise UserInputError("settings.blocklist.no_regex")
    if not any(words for words in views(normalize(entry), drop_lead=False)):
        raise UserInputError("settings.blocklist.bad_entry", max=MAX_ENTRY)
    return entry


def parse_suggestions(raw: str, refine: RefineSettings) -> tuple[str, ...]:
    """The refine form's pre-filled lines, typed on one line separated by ``|``, checked with the rules of
    the form itself (:func:`bot.inputs.parse_suffixes`: 1 to 4 lines, each within ``refine.max_suffix_length``)."""
    lines = tuple(line.strip() for line in raw.split(SUGGESTION_SEPARATOR))
    if not all(lines) or any("\n" in line or "\r" in line for line in lines):
        raise UserInputError("settings.suggestions.bad")
    parse_suffixes("\n".join(lines), refine)  # raises with what is allowed
    return lines


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
