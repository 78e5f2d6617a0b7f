"""Model presets for tests that build requests without a running engine."""

from __future__ import annotations

from bot.config import DEFAULT_MODEL, Settings
from bot.diffusion.families import SD1
from bot.engine.models import Catalogue, ModelPreset

SD15 = Catalogue.resolve(Settings(), families={DEFAULT_MODEL: SD1}).default
"""The default model of a default config: SD 1.5's preset (30 steps, guidance 7.5, 512-pixel sizes)."""


def preset_of(settings: Settings, name: str = "") -> ModelPreset:
    """The preset of a configured model (read from its model index, as the engine does)."""
    preset = Catalogue.resolve(settings).get(name)
    assert preset is not None, f"no model {name!r} in these settings"
    return preset
