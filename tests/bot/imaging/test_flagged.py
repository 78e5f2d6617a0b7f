"""The channel policy for flagged tiles (``bot/imaging/flagged.py``): allow, spoiler, blur (placeholders in a
recomposed grid)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.imaging.flagged import DARKEN, Publication, apply_policy, blurred, flagged_tiles, placeholder
from bot.imaging.grid import badge_origin, badge_size, compose_grid, encode_png, tile_origin
from bot.imaging.tiles import Tiles
from bot.jobs import JobResult, Tile

SIDE = 64


def checkerboard(square: int, side: int = SIDE, *, inverted: bool = False) -> Image.Image:
    y, x = np.mgrid[:side, :side]
    on = ((x // square + y // square) % 2).astype(bool) ^ inverted
    return Image.fromarray(np.where(on[..., None], 230, 20).astype(np.uint8).repeat(3, axis=2))


def noise(seed: int, size: tuple[int, int] = (SIDE, SIDE)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def tiles(count: int) -> list[Image.Image]:
    return [checkerboard(4), noise(1), checkerboard(8), noise(2)][:count]


def result_of(images: list[Image.Image], nsfw: tuple[bool, ...]) -> JobResult:
    """A JobResult as bot.diffusion.renderer makes one: the numbered grid and every tile, as PNG."""
    return JobResult(
        job_id=7,
        tiles=tuple(Tile("a prompt", i) for i in range(len(images))),
        grid_png=encode_png(compose_grid(images)),
        images=Tiles.from_pngs([encode_png(image) for image in images]),
        elapsed=1.0,
        nsfw=nsfw,
    )


def pixels(data: bytes | Image.Image) -> np.ndarray:
    image = Image.open(io.BytesIO(data)) if isinstance(data, bytes) else data
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def region(grid: np.ndarray, index: int, count: int, size: tuple[int, int] = (SIDE, SIDE)) -> np.ndarray:
    x, y = tile_origin(index, count, size)
    return grid[y : y + size[1], x : x + size[0]]


# --- allow and spoiler: the grid as drawn ---------------------------------------------------------


@pytest.mark.parametrize("policy", ["allow", "blur", "spoiler"])
@pytest.mark.parametrize("nsfw", [(False, False, False, False), ()])
def test_nothing_flagged_keeps_the_grid(policy: str, nsfw: tuple[bool, ...]) -> None:
    result = result_of(tiles(4), nsfw)
    assert apply_policy(result, policy) == Publication(result.grid_png, "png", spoiler=False, flagged=())


def test_allow_keeps_the_grid_and_reports_the_flags() -> None:
    result = result_of(tiles(4), (False, True, False, True))
    assert apply_policy(result, "allow") == Publication(result.grid_png, "png", spoiler=False, flagged=(2, 4))


def test_spoiler_keeps_the_bytes() -> None:
    result = result_of(tiles(3), (False, False, True))
    publication = apply_policy(result, "spoiler")
    assert publication == Publication(result.grid_png, "png", spoiler=True, flagged=(3,))


# --- blur ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nsfw",
    [
        (True,),
        (True, False),
        (False, True),
        (True, True),
        (False, True, False),
        (True, False, True),
        (True, False, False, True),
        (False, True, True, False),
        (True, True, True, True),
    ],
)
def test_blur_hides_flagged_tiles_only(nsfw: tuple[bool, ...]) -> None:
    count = len(nsfw)
    result = result_of(tiles(count), nsfw)
    publication = apply_policy(result, "blur")
    assert publication.spoiler is False
    assert publication.filename_ext == "png"
    assert publication.flagged == tuple(i + 1 for i, flag in enumerate(nsfw) if flag)
    original, hidden = pixels(result.grid_png), pixels(publication.image)
    assert hidden.shape == original.shape
    for index, flag in enumerate(nsfw):
        before, after = region(original, index, count), region(hidden, index, count)
        if flag:
            assert np.abs(before - after).mean() > 50  # nothing like the tile
        else:
            assert np.array_equal(before, after)  # untouched, pixel for pixel
    # same layout and numbering as compose_grid: the grid is exactly the one with placeholders
    expected = [placeholder(image) if flag else image for image, flag in zip(tiles(count), nsfw, strict=True)]
    assert np.array_equal(hidden, pixels(compose_grid(expected)))


def test_blur_keeps_the_numbers_on_hidden_tiles() -> None:
    result = result_of(tiles(4), (True, True, True, True))
    hidden = pixels(apply_policy(result, "blur").image)
    unnumbered = pixels(compose_grid([placeholder(image) for image in tiles(4)], numbered=False))
    diameter = badge_size((SIDE, SIDE))
    inset_x, inset_y = badge_origin((SIDE, SIDE))
    for index in range(4):
        x, y = tile_origin(index, 4, (SIDE, SIDE))
        badge = (slice(y + inset_y, y + inset_y + diameter), slice(x + inset_x, x + inset_x + diameter))
        assert np.abs(hidden[badge] - unnumbered[badge]).max() > 100  # the white ring and digit
        rest = hidden.copy()
        rest[badge] = unnumbered[badge]
        assert np.array_equal(region(rest, index, 4), region(unnumbered, index, 4))


@pytest.mark.parametrize("fraction", [32, 16, 8])
@pytest.mark.parametrize("side", [64, 512])
def test_the_blur_leaves_nothing_of_a_pattern(fraction: int, side: int) -> None:
    # detail down to an eighth of the tile (the thumbnail's pixel pitch: the worst case for aliasing)
    square = side // fraction
    tile = checkerboard(square, side)
    assert pixels(tile).std() > 100
    ghost = pixels(blurred(tile))
    assert ghost.std() < 2
    # the pattern and its negative give the same placeholder: nothing of the picture survives
    assert np.abs(ghost - pixels(blurred(checkerboard(square, side, inverted=True)))).max() <= 8


@pytest.mark.parametrize("side", [64, 512])
def test_even_the_coarsest_shape_is_washed_out(side: int) -> None:
    # half white, half black: the thumbnail keeps the halves, the blur over the whole tile
    # softens them so that not even the two ends of a row reach the full (darkened) contrast
    x = np.arange(side)[None, :].repeat(side, axis=0)
    halves = Image.fromarray(np.where(x < side // 2, 255, 0).astype(np.uint8)).convert("RGB")
    row = pixels(blurred(halves))[side // 2, :, 0]
    assert row[0] > row[-1]
    assert row.max() - row.min() < 0.9 * 255 * DARKEN


def test_the_placeholder_keeps_only_colour_and_is_darker() -> None:
    red = Image.new("RGB", (SIDE, SIDE), (200, 40, 40))
    ghost = pixels(blurred(red))
    assert np.abs(ghost - ghost[0, 0]).max() <= 1
    assert ghost[0, 0, 0] < 120  # darkened
    assert ghost[0, 0, 0] > ghost[0, 0, 1]  # still reddish


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (64, 128), (512, 512)])
def test_placeholder_is_labelled_and_sized(size: tuple[int, int]) -> None:
    tile = noise(3, size)
    ghost, labelled = pixels(blurred(tile)), pixels(placeholder(tile))
    assert labelled.shape == (size[1], size[0], 3)
    width, height = size
    middle = (slice(height * 3 // 8, height * 5 // 8), slice(width // 8, width * 7 // 8))
    assert labelled[middle].max() >= 200  # white (anti-aliased) letters in the middle
    assert (np.abs(labelled - ghost).sum(axis=2) > 0).mean() < 0.25  # the label covers a small part
    top = slice(0, height // 4)
    assert np.array_equal(labelled[top], ghost[top])  # nothing drawn above it
    assert ghost.std() < 3


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="policy"):
        apply_policy(result_of(tiles(2), (True, False)), "hide")
    with pytest.raises(ValueError, match="3 safety flags for 2 tiles"):
        flagged_tiles(result_of(tiles(2), (True, False, False)))
