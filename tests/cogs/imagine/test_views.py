"""The buttons' custom_ids (``cogs/imagine/_views.py``): the exact shapes a button carries, and nothing else.

Each button class declares an ``id_format`` (``sg:tile:{job}:{tile}``) from which discord.py's
template is compiled. Specification, checked from the format itself: every id the format can
produce for a valid job (1 to 10**18 - 1) and tile (1 to 4) matches its own button's template and
no other, and ``from_custom_id`` gives back the job and tile; every near-miss of that format (a
tile out of range, a job too long or not ASCII digits, an extra suffix, another prefix, surrounding
whitespace) matches no button at all, so it is refused before any lookup. The ids of messages
already posted are a promise: they keep matching.
"""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.inputs import imagine_request
from bot.jobs import Job
from cogs.imagine._views import (
    BUTTONS,
    CancelButton,
    JobButton,
    RerollButton,
    TileButton,
    UpscaleButton,
    VaryStrongButton,
    VarySubtleButton,
    grid_view,
)
from tests.presets import SD15

JOB_IDS = st.integers(min_value=1, max_value=10**18 - 1)
TILES = st.integers(min_value=1, max_value=4)
BUTTON_CLASSES = st.sampled_from(BUTTONS)


def template(button: type[JobButton]) -> re.Pattern[str]:
    pattern: re.Pattern[str] = button.__discord_ui_compiled_template__  # type: ignore[attr-defined]
    return pattern


def matching_buttons(custom_id: str) -> list[type[JobButton]]:
    """The button classes whose template matches ``custom_id`` as discord.py matches it (fullmatch)."""
    return [button for button in BUTTONS if template(button).fullmatch(custom_id)]


def has_tile(button: type[JobButton]) -> bool:
    return "{tile}" in button.id_format


async def parsed(button: type[JobButton], custom_id: str) -> JobButton:
    """What discord.py builds from a clicked ``custom_id``: the class's ``from_custom_id`` on the match."""
    match = template(button).fullmatch(custom_id)
    assert match is not None, custom_id
    item: Any = None  # from_custom_id rebuilds the button from the match alone
    return await button.from_custom_id(None, item, match)  # type: ignore[arg-type]


def test_every_button_has_a_distinct_format_with_a_job() -> None:
    formats = [button.id_format for button in BUTTONS]
    assert len(set(formats)) == len(formats)
    assert all("{job}" in f for f in formats)
    fields = {name for f in formats for _, name, _, _ in string.Formatter().parse(f) if name is not None}
    assert fields <= {"job", "tile"}


@given(button=BUTTON_CLASSES, job_id=JOB_IDS, tile=TILES)
async def test_every_id_of_a_format_matches_its_button_only_and_round_trips(
    button: type[JobButton], job_id: int, tile: int
) -> None:
    custom_id = button.id_format.format(job=job_id, tile=tile)
    assert len(custom_id) <= 100  # Discord's limit for a custom_id
    assert matching_buttons(custom_id) == [button]
    item = await parsed(button, custom_id)
    assert type(item) is button
    assert item.job_id == job_id
    assert item.tile == (tile if has_tile(button) else None)
    assert item.custom_id == custom_id  # the rebuilt button carries the id it was clicked with
    assert button(job_id, tile if has_tile(button) else None).custom_id == custom_id  # and the bot posts that id


NON_ASCII_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: c not in string.digits)
NOT_A_DIGIT = st.characters().filter(lambda c: c not in string.digits)
KIND_WORDS = {button.id_format.split(":")[1] for button in BUTTONS}  # tile, reroll, cancel
WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r\n", "\u00a0", "\u200b"])


TILE_EDITS = ["bad tile", "odd tile", "long tile", "no tile"]
EDITS = ["long job", "empty job", "odd job", "suffix", "prefix", "namespace", "kind", "space", *TILE_EDITS]


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[str, str]:
    """A custom_id one edit away from a valid one of some button's format, and what the edit was."""
    kind = draw(st.sampled_from(EDITS))  # the edit first, so that each is tried about as often
    button = draw(st.sampled_from([b for b in BUTTONS if has_tile(b) or kind not in TILE_EDITS]))
    fmt = button.id_format
    job, tile = str(draw(JOB_IDS)), str(draw(TILES))
    if kind == "long job":  # 19 digits or more
        job = str(draw(st.integers(min_value=10**18, max_value=10**30)))
    elif kind == "empty job":
        job = ""
    elif kind == "odd job":  # not plain ASCII digits
        job = draw(
            st.one_of(
                st.lists(NON_ASCII_DIGITS, min_size=1, max_size=18).map("".join),
                st.sampled_from(["-1", "+1", "1e3", "0x1f", "1_000", "1.0", " 1", "1 "]),
            )
        )
    elif kind == "bad tile":  # one digit, out of 1..4
        tile = draw(st.sampled_from("056789"))
    elif kind == "odd tile":
        tile = draw(st.one_of(NON_ASCII_DIGITS, st.sampled_from(["", " ", "-1", "+1", "01", "1.0", "x"])))
    elif kind == "long tile":
        tile = str(draw(st.integers(min_value=10, max_value=10**6)))
    elif kind == "no tile":  # the format with its tile field (and the colon before it) dropped
        fmt = fmt.replace(":{tile}", "")
    custom_id = fmt.format(job=job, tile=tile)
    if kind == "suffix":  # anything after a valid id, starting with a non-digit (a digit would lengthen the job)
        custom_id += draw(st.text(min_size=1).filter(lambda s: s[0] not in string.digits))
    elif kind == "prefix":  # anything before a valid id
        custom_id = draw(st.text(min_size=1)) + custom_id
    elif kind == "namespace":  # "sg" replaced: another bot's ids, or ours in another case
        other = draw(st.text(alphabet=string.ascii_letters + string.digits, max_size=8).filter(lambda s: s != "sg"))
        custom_id = other + custom_id.removeprefix("sg")
    elif kind == "kind":  # "tile" / "reroll" / "cancel" replaced by another word
        word = fmt.split(":")[1]
        other = draw(st.text(alphabet=string.ascii_letters, max_size=10).filter(lambda s: s not in KIND_WORDS))
        custom_id = custom_id.replace(f":{word}:", f":{other}:", 1)
    elif kind == "space":
        before, after = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
        custom_id = (draw(WHITESPACE) if before else "") + custom_id + (draw(WHITESPACE) if after else "")
    return kind, custom_id


@given(near_misses())
def test_near_misses_of_every_format_match_no_button(case: tuple[str, str]) -> None:
    kind, custom_id = case
    assert matching_buttons(custom_id) == [], (kind, custom_id)


@pytest.mark.parametrize(
    "custom_id",
    ["sg:tile:1:0", "sg:tile:1:5", "sg:tile::1", "sg:tile:-1:1", "sg:tile:1:1:1", "sg:tile:1e3:1",
     "sg:tile:1234567890123456789:1", "sg:tile:١:1", "SG:TILE:1:1", "sg:tile:1:1\n", " sg:reroll:1",
     "sg:reroll:", "sg:reroll:1:1", "sg:cancel:1 ", "sg:cancel:1234567890123456789", "sg:refine:1:1", ""],
)  # fmt: skip
def test_tampered_ids_match_no_button(custom_id: str) -> None:
    assert matching_buttons(custom_id) == []


# The ids on messages the bot has already posted. Changing a format breaks every button out there.
POSTED = [
    ("sg:tile:123:4", TileButton, 123, 4),
    ("sg:reroll:123", RerollButton, 123, None),
    ("sg:cancel:123", CancelButton, 123, None),
    ("sg:upscale:123:2", UpscaleButton, 123, 2),
    ("sg:vary-subtle:123:1", VarySubtleButton, 123, 1),
    ("sg:vary-strong:123:1", VaryStrongButton, 123, 1),
]


@pytest.mark.parametrize(("custom_id", "button", "job_id", "tile"), POSTED)
async def test_ids_already_posted_keep_working(
    custom_id: str, button: type[JobButton], job_id: int, tile: int | None
) -> None:
    assert matching_buttons(custom_id) == [button]
    item = await parsed(button, custom_id)
    assert (type(item), item.job_id, item.tile) == (button, job_id, tile)
    assert button(job_id, tile).custom_id == custom_id


async def test_grid_view_buttons_carry_job_and_tile() -> None:
    job = Job(123456789012345678, imagine_request(SD15, prompt="x", seed=1))
    view = grid_view(job, 4)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert ids == [f"sg:tile:{job.id}:{n}" for n in range(1, 5)] + [f"sg:reroll:{job.id}"]
    assert all(len(i) <= 100 for i in ids)
    assert [item.item.label for item in view.children] == ["1", "2", "3", "4", "Re-roll"]  # type: ignore[attr-defined]


async def test_a_model_that_draws_from_images_gets_the_upscale_row() -> None:
    job = Job(42, imagine_request(SD15, prompt="x", seed=1))
    view = grid_view(job, 4, image_to_image=True)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert ids[5:] == [f"sg:upscale:42:{n}" for n in range(1, 5)]
    assert [item.item.row for item in view.children] == [None] * 5 + [1] * 4  # type: ignore[attr-defined]
    assert [item.item.label for item in view.children][5:] == ["U1", "U2", "U3", "U4"]  # type: ignore[attr-defined]


async def test_an_upscale_offers_vary_and_refine() -> None:
    from dataclasses import replace

    from bot.jobs import JobKind

    request = replace(
        imagine_request(SD15, prompt="x", seed=1), kind=JobKind.UPSCALE, source="{}", strength=0.35, parent_job=7
    )
    view = grid_view(Job(43, request), 1, image_to_image=True)
    ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert ids == ["sg:vary-subtle:43:1", "sg:vary-strong:43:1", "sg:tile:43:1"]
    labels = [item.item.label for item in view.children]  # type: ignore[attr-defined]
    assert labels == ["Vary (subtle)", "Vary (strong)", "Refine"]
