"""Tiles → one numbered grid, its encoding under an upload limit, and the progress bar (``bot/imaging/grid.py``)."""

import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from bot.imaging.grid import (
    EMPTY_FILL,
    badge_origin,
    badge_size,
    compose_grid,
    encode_png,
    encode_to_fit,
    grid_shape,
    progress_bar,
    tile_origin,
)

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (220, 220, 60)]


def solid_tiles(count: int, size: tuple[int, int] = (64, 64)) -> list[Image.Image]:
    return [Image.new("RGB", size, COLOURS[i]) for i in range(count)]


def noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Incompressible content: PNG cannot shrink it, so encode_to_fit has to go lossy."""
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def badge_box(index: int, count: int, tile: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y = tile_origin(index, count, tile)
    dx, dy = badge_origin(tile)
    d = badge_size(tile)
    return x + dx, y + dy, x + dx + d, y + dy + d


# --- layout -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "expected"), [(1, (64, 64)), (2, (128, 64)), (3, (128, 128)), (4, (128, 128))])
def test_layout_sizes(count: int, expected: tuple[int, int]) -> None:
    assert compose_grid(solid_tiles(count)).size == expected


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 4),
    width=st.integers(8, 96).map(lambda v: v * 2),
    height=st.integers(8, 96).map(lambda v: v * 2),
)
def test_layout_places_every_tile(count: int, width: int, height: int) -> None:
    grid = compose_grid(solid_tiles(count, (width, height)), numbered=False)
    columns, rows = grid_shape(count)
    assert grid.size == (columns * width, rows * height)
    assert grid.mode == "RGB"
    for i in range(count):
        x, y = tile_origin(i, count, (width, height))
        # the far corner of each tile is never under a badge
        assert grid.getpixel((x + width - 1, y + height - 1)) == COLOURS[i]
    if count == 3:
        assert grid.getpixel((2 * width - 1, 2 * height - 1)) == EMPTY_FILL


def test_tiles_are_copied_unchanged_outside_the_badge() -> None:
    tiles = [noisy((64, 64), seed) for seed in range(4)]
    grid = compose_grid(tiles)
    for i, tile in enumerate(tiles):
        x, y = tile_origin(i, 4, tile.size)
        crop = grid.crop((x, y, x + 64, y + 64))
        diff = ImageChops.difference(crop, tile).getbbox()
        assert diff is not None  # the badge
        left, top, right, bottom = badge_box(i, 4, tile.size)
        assert diff[0] >= left - x
        assert diff[1] >= top - y
        assert diff[2] <= right - x
        assert diff[3] <= bottom - y


@pytest.mark.parametrize("side", [64, 512, 1024])
def test_numbers_are_drawn_in_their_own_tile(side: int) -> None:
    tiles = solid_tiles(4, (side, side))
    plain = compose_grid(tiles, numbered=False)
    grid = compose_grid(tiles)
    changed = ImageChops.difference(grid, plain)
    for i in range(4):
        box = badge_box(i, 4, (side, side))
        region = changed.crop(box)
        assert region.getbbox() is not None, f"no badge on tile {i + 1}"
        # dark disc, white ring and digit: both very dark and very bright pixels in the badge
        extrema = grid.crop(box).convert("L").getextrema()
        assert extrema[0] < 80
        assert extrema[1] > 220
    # and nothing outside the four badges
    mask = Image.new("L", grid.size, 255)
    for i in range(4):
        mask.paste(0, badge_box(i, 4, (side, side)))
    outside = Image.composite(changed, Image.new("RGB", grid.size), mask)
    assert outside.getbbox() is None


def test_badges_differ_by_number() -> None:
    tile = (128, 128)
    grid = compose_grid([Image.new("RGB", tile, (90, 90, 90))] * 4)
    crops = [grid.crop(badge_box(i, 4, tile)).tobytes() for i in range(4)]
    assert len(set(crops)) == 4


def test_badge_scales_with_tile_size() -> None:
    assert badge_size((64, 64)) >= 18
    assert badge_size((1024, 1024)) > 4 * badge_size((64, 64))
    assert badge_size((512, 768)) == badge_size((512, 512))


def test_rejects_unequal_sizes() -> None:
    with pytest.raises(ValueError, match="same size"):
        compose_grid([Image.new("RGB", (64, 64)), Image.new("RGB", (64, 72))])


@pytest.mark.parametrize("count", [0, 5])
def test_rejects_tile_counts(count: int) -> None:
    with pytest.raises(ValueError, match="1 to 4 tiles"):
        compose_grid(solid_tiles(4)[:1] * count)


def test_accepts_other_modes() -> None:
    tiles = [Image.new("RGBA", (64, 64), (10, 20, 30, 255)), Image.new("L", (64, 64), 128)]
    grid = compose_grid(tiles, numbered=False)
    assert grid.getpixel((63, 63)) == (10, 20, 30)
    assert grid.getpixel((127, 63)) == (128, 128, 128)


# --- encoding -----------------------------------------------------------------------------------


def test_encode_png_roundtrip_and_metadata() -> None:
    image = compose_grid(solid_tiles(4))
    data = encode_png(image, metadata={"prompt": "a cat", "seed": "42"})
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as back:
        assert back.info["prompt"] == "a cat"
        assert back.info["seed"] == "42"
        assert ImageChops.difference(back.convert("RGB"), image).getbbox() is None


def test_encode_to_fit_keeps_png_when_it_fits() -> None:
    image = compose_grid(solid_tiles(4))
    data, ext = encode_to_fit(image, 10_000_000)
    assert ext == "png"
    assert data == encode_png(image)


def test_encode_to_fit_goes_lossy_under_a_small_limit() -> None:
    image = noisy((256, 256))
    assert len(encode_png(image)) > 150_000
    data, ext = encode_to_fit(image, 150_000)
    assert ext in ("webp", "jpg")
    assert len(data) <= 150_000
    with Image.open(io.BytesIO(data)) as back:
        assert back.size == (256, 256)
        assert back.format == {"webp": "WEBP", "jpg": "JPEG"}[ext]


def test_encode_to_fit_shrinks_as_a_last_resort() -> None:
    image = noisy((512, 512))
    data, _ = encode_to_fit(image, 20_000)
    assert len(data) <= 20_000
    with Image.open(io.BytesIO(data)) as back:
        assert back.width < 512
        assert back.width == back.height  # aspect kept


def test_encode_to_fit_gives_up_clearly() -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        encode_to_fit(noisy((128, 128)), 200)
    with pytest.raises(ValueError, match="positive"):
        encode_to_fit(noisy((8, 8)), 0)


# --- progress -----------------------------------------------------------------------------------


def test_progress_bar_examples() -> None:
    assert progress_bar(4, 8, width=8) == "▰▰▰▰▱▱▱▱ 4/8"
    assert progress_bar(0, 30) == "▱" * 20 + " 0/30"
    assert progress_bar(30, 30) == "▰" * 20 + " 30/30"
    assert progress_bar(31, 30) == "▰" * 20 + " 30/30"
    assert progress_bar(-1, 30) == "▱" * 20 + " 0/30"
    assert progress_bar(29, 30).startswith("▰" * 19 + "▱")


@pytest.mark.parametrize(("total", "width"), [(0, 20), (-3, 20), (10, 0)])
def test_progress_bar_rejects(total: int, width: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        progress_bar(1, total, width)


@given(step=st.integers(-5, 600), total=st.integers(1, 500), width=st.integers(1, 40))
def test_progress_bar_properties(step: int, total: int, width: int) -> None:
    text = progress_bar(step, total, width)
    bar, label = text.split(" ")
    assert len(bar) == width
    assert set(bar) <= {"▰", "▱"}
    assert "▱▰" not in bar  # filled part first
    done = min(max(step, 0), total)
    assert label == f"{done}/{total}"
    filled = bar.count("▰")
    assert (filled == width) == (done == total)
    assert filled <= done * width / total < filled + 1
    if done < total:
        assert progress_bar(done + 1, total, width).count("▰") >= filled
