"""Tiles → one numbered grid image, image encoding, and the text progress bar. Pillow only.

Everything here is CPU work on whole images (tens of milliseconds for a 1024² grid), so it
runs in the worker thread or ``asyncio.to_thread``, never on the event loop.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin, features

from bot.imaging.png import encode_rgb

logger = logging.getLogger(__name__)

MAX_GRID_TILES = 4
EMPTY_FILL = (40, 40, 40)
"""An empty slot of a 2×2 grid (three tiles): a neutral dark grey."""

BADGE_FILL = (20, 20, 20, 215)
BADGE_OUTLINE = (255, 255, 255, 255)
BADGE_TEXT = (255, 255, 255, 255)
BADGE_SUPERSAMPLE = 4
"""The badge is drawn this many times larger, then shrunk: smooth edges at any size."""

PNG_STRATEGY = zlib.Z_HUFFMAN_ONLY
"""zlib strategy: PNG's row filters already decorrelate the pixels, so Huffman coding alone (no
LZ77 match search) is both faster and, on SD-like content, smaller. A 1024² synthetic SD-like grid,
2-core CPU, median of 5: 86 ms / 1.71 MB at level 1 with the default strategy, 72 ms / 1.41 MB with
Huffman only; on the random test model's noise tiles benchmarks/ measured 113 → 75 ms."""

PNG_COMPRESS_LEVEL = 1
"""zlib level for PNGs. Encoding a 1024² grid of four 512² tiles (synthetic SD-like content:
smooth colour fields, mid-frequency detail, grain σ 2), Pillow 13, 2-core CPU, median of 5:

=====  ========  =======
level  encode    size
=====  ========  =======
1      0.09 s    1.84 MB
3      0.13 s    1.81 MB
6      0.31 s    1.57 MB  (Pillow's default)
=====  ========  =======

Without grain level 6 took 0.47 s for 1.17 MB against 0.07 s for 1.38 MB at level 1. Level 1
is 3.5-7× faster for files 12-18 % larger, still far below Discord's upload limit; the worker
thread encodes five PNGs (grid + tiles) per job, so this saves ~0.4 s of CPU per job."""

LOSSY_QUALITIES = (90, 80, 70, 60, 50, 40)
MIN_FIT_SIDE = 64
"""encode_to_fit halves the image while it does not fit, down to this side, then gives up."""


# --- grid ---------------------------------------------------------------------------------------


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) for ``count`` tiles: 1 → 1×1, 2 → 2×1, 3 or 4 → 2×2."""
    if not 1 <= count <= MAX_GRID_TILES:
        raise ValueError(f"a grid holds 1 to {MAX_GRID_TILES} tiles, got {count}")
    return (1, 1) if count == 1 else (2, 1) if count == 2 else (2, 2)


def tile_origin(index: int, count: int, tile_size: tuple[int, int]) -> tuple[int, int]:
    """The top-left pixel of tile ``index`` (0-based) in a grid of ``count`` tiles."""
    columns, _ = grid_shape(count)
    width, height = tile_size
    return (index % columns) * width, (index // columns) * height


def badge_size(tile_size: tuple[int, int]) -> int:
    """The badge's diameter in pixels: about a tenth of the tile, never below 18 px."""
    return max(18, round(min(tile_size) * 0.1))


def badge_origin(tile_size: tuple[int, int]) -> tuple[int, int]:
    """The badge's top-left pixel relative to its tile (the top-left corner, inset a little)."""
    inset = max(2, round(min(tile_size) * 0.02))
    return inset, inset


def draw_badge(number: int, diameter: int) -> Image.Image:
    """A round RGBA badge: dark translucent disc, white ring, the number in white."""
    big = diameter * BADGE_SUPERSAMPLE
    badge = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(badge)
    ring = max(BADGE_SUPERSAMPLE, round(big * 0.07))
    draw.ellipse((0, 0, big - 1, big - 1), fill=BADGE_FILL, outline=BADGE_OUTLINE, width=ring)
    text = str(number)
    font = ImageFont.load_default(size=round(big * (0.62 if len(text) == 1 else 0.48)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(((big - (right - left)) / 2 - left, (big - (bottom - top)) / 2 - top), text, font=font, fill=BADGE_TEXT)
    return badge.resize((diameter, diameter), Image.Resampling.LANCZOS)


def compose_grid(images: Sequence[Image.Image], *, numbered: bool = True) -> Image.Image:
    """Lay 1-4 equal-sized tiles out as 1×1, 2×1 or 2×2 (an empty slot is dark grey).

    With ``numbered`` each tile gets its number (1-based, in reading order) on a badge in its
    top-left corner, sized to the tile, so "tile 3" means the same thing on the image and on
    the buttons below it.
    """
    count = len(images)
    columns, rows = grid_shape(count)
    tile_size = images[0].size
    if any(image.size != tile_size for image in images):
        sizes = ", ".join(f"{w}×{h}" for w, h in (image.size for image in images))
        raise ValueError(f"grid tiles must all have the same size, got {sizes}")
    width, height = tile_size

    grid = Image.new("RGB", (columns * width, rows * height), EMPTY_FILL)
    diameter = badge_size(tile_size)
    inset_x, inset_y = badge_origin(tile_size)
    for index, image in enumerate(images):
        x, y = tile_origin(index, count, tile_size)
        grid.paste(image.convert("RGB"), (x, y))
        if numbered:
            badge = draw_badge(index + 1, diameter)
            grid.paste(badge, (x + inset_x, y + inset_y), badge)
    return grid


# --- encoding -----------------------------------------------------------------------------------


def encode_png(
    image: Image.Image,
    *,
    metadata: Mapping[str, str] | None = None,
    compress_level: int = PNG_COMPRESS_LEVEL,
) -> bytes:
    """PNG bytes, fast (see :data:`PNG_COMPRESS_LEVEL`); ``metadata`` becomes tEXt chunks.

    RGB images at the default level go through :func:`bot.imaging.png.encode_rgb` (the same kind of PNG,
    written 3-4× faster); anything else through Pillow.
    """
    if image.mode == "RGB" and compress_level == PNG_COMPRESS_LEVEL:
        return encode_rgb(image, metadata=metadata)
    info = None
    if metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level, compress_type=PNG_STRATEGY, pnginfo=info)
    return buffer.getvalue()


def _encode_lossy(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "WEBP":
        image.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def encode_to_fit(image: Image.Image, limit_bytes: int) -> tuple[bytes, str]:
    """Encode ``image`` in at most ``limit_bytes``: ``(data, extension)`` with extension png, webp or jpg.

    PNG when it fits; otherwise WebP (JPEG where Pillow lacks WebP) from quality 90 down to 40;
    otherwise the image is halved and tried again. ``ValueError`` when even a 64 px version
    does not fit.
    """
    if limit_bytes < 1:
        raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
    png = encode_png(image)
    if len(png) <= limit_bytes:
        return png, "png"

    fmt, ext = ("WEBP", "webp") if features.check("webp") else ("JPEG", "jpg")
    current = image.convert("RGB")
    while True:
        for quality in LOSSY_QUALITIES:
            data = _encode_lossy(current, fmt, quality)
            if len(data) <= limit_bytes:
                logger.debug("encoded %dx%d as %s q%d: %d bytes", *current.size, ext, quality, len(data))
                return data, ext
        width, height = current.size
        if min(width, height) // 2 < MIN_FIT_SIDE:
            raise ValueError(f"cannot encode a {image.width}×{image.height} image in {limit_bytes} bytes")
        logger.info(
            "%dx%d does not fit in %d bytes even as %s q%d; halving it",
            width,
            height,
            limit_bytes,
            ext,
            LOSSY_QUALITIES[-1],
        )
        current = current.resize((width // 2, height // 2), Image.Resampling.LANCZOS)


# --- progress -----------------------------------------------------------------------------------


def progress_bar(step: int, total: int, width: int = 20) -> str:
    """``▰▰▰▰▱▱▱▱ 4/8``: ``step`` is clamped into ``0..total``; the bar is full only when done."""
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    done = min(max(step, 0), total)
    filled = done * width // total
    return f"{'▰' * filled}{'▱' * (width - filled)} {done}/{total}"
