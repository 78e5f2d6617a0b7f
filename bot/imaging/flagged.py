"""What members see of a grid the safety checker flagged: the channel's policy. Pillow only.

A job's request carries the policy of the channel it was started in (``JobRequest.policy``):

- ``allow``: the grid as drawn;
- ``spoiler``: the grid as drawn, posted as a spoiler when any tile was flagged;
- ``blur``: the grid recomposed with every flagged tile replaced by a placeholder: a
  heavily blurred, darkened ghost of its colours, labelled "hidden". Unflagged tiles and the
  numbering are exactly as in the original grid.

:func:`apply_policy` decodes, draws and encodes whole images (tens of milliseconds for a
1024² grid): run it in a worker thread (``asyncio.to_thread``), never on the event loop.
Only the grid is handled here; the original tiles stay in :attr:`JobResult.images`, and
whoever posts or saves those must check :attr:`Publication.flagged` first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from bot.config import POLICIES
from bot.imaging.grid import compose_grid, encode_png
from bot.imaging.recipe import read_text_chunks
from bot.jobs import JobResult

logger = logging.getLogger(__name__)

PLACEHOLDER_SIDE = 8
"""The flagged tile is shrunk to this many pixels on its long side before anything else:
whatever survives is at most an 8-pixel thumbnail's worth of colour."""
THUMBNAIL_BLUR = 1.5
"""Gaussian blur radius on the thumbnail, in its pixels: a pattern at its pixel pitch (a fine
checkerboard aliased into it) is gone before the thumbnail is enlarged."""
BLUR_FRACTION = 1 / 4
"""Gaussian blur radius of the enlarged thumbnail, as a fraction of the tile's long side."""
DARKEN = 0.45
"""Brightness of the placeholder relative to the blurred colours (1 = unchanged)."""
LABEL = "hidden"
LABEL_FILL = (255, 255, 255)
LABEL_STROKE = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Publication:
    """The grid to post for a job, and how."""

    image: bytes
    filename_ext: str
    """``png``."""
    spoiler: bool
    """Post the file as a spoiler (``SPOILER_`` file name)."""
    flagged: tuple[int, ...]
    """The tiles the safety checker flagged, 1-based (as numbered on the grid and the buttons)."""


def flagged_tiles(result: JobResult) -> tuple[int, ...]:
    """The 1-based numbers of ``result``'s flagged tiles (none when no checker ran)."""
    if result.nsfw and len(result.nsfw) != len(result.images):
        raise ValueError(f"{len(result.nsfw)} safety flags for {len(result.images)} tiles")
    return tuple(number for number, flag in enumerate(result.nsfw, start=1) if flag)


def apply_policy(result: JobResult, policy: str) -> Publication:
    """The grid of ``result`` as ``policy`` (allow | blur | spoiler) says members may see it. Blocking."""
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    flagged = flagged_tiles(result)
    if not flagged or policy == "allow":
        return Publication(result.grid_png, "png", spoiler=False, flagged=flagged)
    if policy == "spoiler":
        return Publication(result.grid_png, "png", spoiler=True, flagged=flagged)
    tiles = result.images.images()
    for number in flagged:
        tiles[number - 1] = placeholder(tiles[number - 1])
    logger.info("job %d: tile(s) %s hidden by the blur policy", result.job_id, list(flagged))
    recipe = read_text_chunks(result.grid_png)  # the recomposed grid keeps the drawn grid's recipe
    return Publication(encode_png(compose_grid(tiles), metadata=recipe), "png", spoiler=False, flagged=flagged)


def blurred(tile: Image.Image) -> Image.Image:
    """``tile`` reduced to a dark blur of its colours: shrunk to ~8 px, enlarged, blurred, darkened."""
    width, height = tile.size
    scale = PLACEHOLDER_SIDE / max(width, height)
    small = tile.convert("RGB").resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BOX
    )
    small = small.filter(ImageFilter.GaussianBlur(radius=THUMBNAIL_BLUR))
    ghost = small.resize((width, height), Image.Resampling.BILINEAR)
    ghost = ghost.filter(ImageFilter.GaussianBlur(radius=max(width, height) * BLUR_FRACTION))
    return ImageEnhance.Brightness(ghost).enhance(DARKEN)


def placeholder(tile: Image.Image) -> Image.Image:
    """What a flagged tile becomes under the blur policy: :func:`blurred`, labelled "hidden"."""
    image = blurred(tile)
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, round(min(width, height) * 0.12)))
    stroke = max(1, round(min(width, height) * 0.006))
    left, top, right, bottom = draw.textbbox((0, 0), LABEL, font=font, stroke_width=stroke)
    origin = ((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top)
    draw.text(origin, LABEL, font=font, fill=LABEL_FILL, stroke_width=stroke, stroke_fill=LABEL_STROKE)
    return image
