"""custom_id templates: what the buttons carry, and what is refused before any lookup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import GenerationSettings
from bot.jobs import Job
from bot.requests import imagine_request
from cogs.imagine import RerollButton, TileButton, grid_view

TILE = TileButton.__discord_ui_compiled_template__
REROLL = RerollButton.__discord_ui_compiled_template__


async def test_grid_view_buttons_carry_job_and_tile() -> None:
    job = Job(123456789012345678, imagine_request(GenerationSettings(), prompt="x", seed=1))
    view = grid_view(job, 4)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert ids == [f"sg:tile:{job.id}:{n}" for n in range(1, 5)] + [f"sg:reroll:{job.id}"]
    assert all(len(i) <= 100 for i in ids)
    assert [item.item.label for item in view.children] == ["1", "2", "3", "4", "Re-roll"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("custom_id", ["sg:tile:1:1", "sg:tile:42:4", "sg:tile:999999999999999999:2"])
def test_valid_tile_ids(custom_id: str) -> None:
    assert TILE.fullmatch(custom_id)


@pytest.mark.parametrize(
    "custom_id",
    ["sg:tile:1:0", "sg:tile:1:5", "sg:tile::1", "sg:tile:-1:1", "sg:tile:1:1:1", "sg:tile:1e3:1",
     "sg:tile:1234567890123456789:1", "sg:tile:١:1", "SG:TILE:1:1", "sg:reroll:1"],
)  # fmt: skip
def test_tampered_tile_ids_do_not_match(custom_id: str) -> None:
    assert TILE.fullmatch(custom_id) is None


@given(st.text(max_size=100))
def test_arbitrary_ids_match_only_the_exact_shapes(custom_id: str) -> None:
    tile = TILE.fullmatch(custom_id)
    if tile is not None:
        assert custom_id == f"sg:tile:{int(tile['job'])}:{tile['tile']}" or tile["job"].startswith("0")
        assert 1 <= int(tile["tile"]) <= 4
    reroll = REROLL.fullmatch(custom_id)
    if reroll is not None:
        assert reroll["job"].isascii() and reroll["job"].isdigit()
