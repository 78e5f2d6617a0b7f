"""The models a device keeps loaded: least recently used first out, within the memory budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot.config import ModelSettings
from bot.diffusion.shelf import GIB, Shelf, UnknownModelError

MODELS = {name: ModelSettings(id=f"org/{name}") for name in ("a", "b", "c")}


@dataclass
class Loads:
    """Stands in for Pipeline.load: a pretend pipeline of a chosen weight, and a log of loads."""

    gib: dict[str, float]
    seen: list[str] = field(default_factory=list)

    def __call__(self, settings: ModelSettings) -> Any:
        name = settings.id.removeprefix("org/")
        self.seen.append(name)
        return Pretend(name, int(self.gib[name] * GIB))


@dataclass
class Pretend:
    name: str
    weight_bytes: int


def test_one_model_at_a_time_without_a_budget() -> None:
    loads = Loads({"a": 1, "b": 1, "c": 1})
    shelf = Shelf(MODELS, loads)
    notices: list[str] = []
    assert shelf.get("", notices.append).name == "a"  # "" is the default (first) model
    assert shelf.get("b", notices.append).name == "b"
    assert shelf.loaded == ("b",)
    assert shelf.get("b", notices.append).name == "b"  # held: no second load
    assert loads.seen == notices == ["a", "b"]


def test_models_stay_while_they_fit_and_the_least_recently_used_goes() -> None:
    loads = Loads({"a": 2, "b": 2, "c": 2})
    shelf = Shelf(MODELS, loads, budget_gib=4.5)
    shelf.get("a")
    shelf.get("b")
    shelf.get("a")  # a is now the most recently used
    assert shelf.loaded == ("b", "a")
    shelf.get("c")  # measured 2 GiB before: room is made before the load
    assert shelf.loaded == ("a", "c")
    assert loads.seen == ["a", "b", "c"]


def test_a_model_larger_than_the_budget_still_loads_alone() -> None:
    shelf = Shelf(MODELS, Loads({"a": 1, "b": 9, "c": 1}), budget_gib=4)
    shelf.get("a")
    shelf.get("b")
    assert shelf.loaded == ("b",)


def test_a_local_folder_is_weighed_before_its_first_load(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 3000)
    models = {"a": ModelSettings(id="org/a"), "big": ModelSettings(id=str(folder))}
    loaded: list[str] = []

    def load(settings: ModelSettings) -> Any:
        loaded.append(settings.id)
        return Pretend(settings.id, 3000 if settings.id == str(folder) else 2000)

    shelf = Shelf(models, load, budget_gib=4500 / GIB)
    shelf.get("a")
    shelf.get("big")  # 2000 + 3000 > 4500: "a" is unloaded before "big" is read
    assert shelf.loaded == ("big",)


def test_an_unknown_model_is_a_clear_error() -> None:
    shelf = Shelf(MODELS, Loads({"a": 1, "b": 1, "c": 1}))
    with pytest.raises(UnknownModelError, match="'gone' is not configured"):
        shelf.get("gone")
