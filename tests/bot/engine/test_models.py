"""The model catalogue: [[models]] and [model] id, and how each model's preset is settled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import ConfigError, parse_settings, shorthand_name
from bot.diffusion.families import FLUX_DEV, FLUX_SCHNELL, SD1, SDXL
from bot.engine.models import Catalogue

TWO = """
[[models]]
name = "sdxl"
id = "org/sdxl"

[[models]]
name = "flux"
id = "org/flux"
steps = 12
"""
FAMILIES = {"org/sdxl": SDXL, "org/flux": FLUX_DEV, "org/schnell": FLUX_SCHNELL}


def test_several_models_the_first_is_the_default() -> None:
    models = Catalogue.resolve(parse_settings(TWO), families=FAMILIES)
    assert models.names == ["sdxl", "flux"]
    assert models.get("") is models.default and models.default.name == "sdxl"
    assert models.get("nope") is None
    sdxl, flux = models
    assert (sdxl.steps, sdxl.guidance, sdxl.sizes[0].width) == (30, 5.0, 1024)  # SDXL's preset
    assert (flux.steps, flux.guidance, flux.max_guidance) == (12, 3.5, 10.0)  # its own steps, FLUX.1's guidance
    assert flux.label == "flux (FLUX.1 [dev])"
    assert [s.name for s in models.size_names] == ["square", "portrait", "landscape"]


def test_the_one_model_shorthand() -> None:
    settings = parse_settings('[model]\nid = "some/folder/My Model v2"\n')
    (entry,) = settings.model_entries
    assert (entry.name, entry.id) == ("my-model-v2", "some/folder/My Model v2")
    assert shorthand_name("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5"
    assert shorthand_name("///") == "default"


def test_generation_defaults_apply_to_every_model_that_sets_none() -> None:
    settings = parse_settings(TWO + "\n[generation]\ndefault_steps = 20\ndefault_guidance = 4.0\nmax_guidance = 8.0\n")
    sdxl, flux = Catalogue.resolve(settings, families=FAMILIES)
    assert (sdxl.steps, sdxl.guidance, sdxl.max_guidance) == (20, 4.0, 8.0)
    assert flux.steps == 12  # its own wins


def test_a_model_without_guidance_keeps_zero() -> None:
    settings = parse_settings('[[models]]\nname = "fast"\nid = "org/schnell"\n')
    (fast,) = Catalogue.resolve(settings, families=FAMILIES)
    assert (fast.steps, fast.guidance) == (4, 0.0)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[model]\nid = "x/y"\n' + TWO, "model.id"),
        ('[[models]]\nname = "Big Model"\nid = "a/b"\n', "models[0].name"),
        ('[[models]]\nname = "a"\nid = "a/b"\n[[models]]\nname = "a"\nid = "c/d"\n', "models"),
        ('[[models]]\nname = "a"\nid = ""\n', "models[0].id"),
        ('[[models]]\nname = "a"\nid = "a/b"\nsteps = 0\n', "models[0].steps"),
        ('[[models]]\nname = "a"\nid = "a/b"\ndtype = "fp8"\n', "models[0].dtype"),
        ('[[models]]\nname = "a"\nid = "a/b"\nscheduler = "nope"\n', "models[0].scheduler"),
        ('[[models]]\nname = "a"\nid = "a/b"\ncolour = 1\n', "models[0].colour"),
        ("[safety]\nclassifier_threshold = 0.0\n", "safety.classifier_threshold"),
        ("[model]\nmemory_budget = -1.0\n", "model.memory_budget"),
    ],
)
def test_bad_model_settings_name_the_key(toml: str, key: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(key)):
        parse_settings(toml)


def test_sizes_must_suit_the_family() -> None:
    settings = parse_settings(
        '[[models]]\nname = "flux"\nid = "org/flux"\n[[models.sizes]]\nname = "odd"\nwidth = 520\nheight = 512\n'
    )
    with pytest.raises(ConfigError, match=r"models\[0\]\.sizes\[0\]\.width: flux is FLUX.1 \[dev\].*multiples of 16"):
        Catalogue.resolve(settings, families=FAMILIES)


def test_a_default_outside_the_bounds_is_refused_at_start_up() -> None:
    settings = parse_settings('[[models]]\nname = "x"\nid = "org/sdxl"\n\n[generation]\nmax_steps = 20\n')
    with pytest.raises(ConfigError, match=r"models\[0\]\.steps: x .* 30 steps"):
        Catalogue.resolve(settings, families=FAMILIES)


def test_the_family_is_read_from_the_model_index(tiny_model: Path) -> None:
    settings = parse_settings(f'[model]\nid = "{tiny_model}"\nscheduler = "LCMScheduler"\n')
    (preset,) = Catalogue.resolve(settings)
    assert preset.family.name == "sd1-lcm"  # SD 1.x from model_index.json, LCM from the scheduler swap
    plain = Catalogue.resolve(parse_settings(f'[model]\nid = "{tiny_model}"\n')).default
    assert plain.family is SD1


def test_an_unreadable_index_falls_back_to_generic(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    settings = parse_settings(f'[model]\nid = "{tmp_path / "missing"}"\n')
    assert Catalogue.resolve(settings).default.family.name == "generic"
    assert "cannot read the model index" in caplog.text
