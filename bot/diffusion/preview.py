"""Live previews: the latents of a running batch → a small numbered grid, with no extra model.

A full VAE decode costs about as much as several denoising steps; a preview has to cost almost
nothing, because it runs in the worker thread between two steps. SD 1.x's latent space is close
enough to linear in colour that a 4×3 matrix gives a recognisable (blurry, 1/8-resolution)
picture: the "latent2rgb" / "Approx cheap" preview of A1111 and ComfyUI. Each family brings its own
published factors (:mod:`bot.diffusion.families`, which also unpacks packed latents); a family
without them gets a generic projection of its first channels.

Pure torch + Pillow; the tiles are laid out by :func:`bot.imaging.grid.compose_grid`, numbered like the
final grid, so "tile 3" is in the same place while the job runs and when it is done. torch is
imported on first use: the cogs read :data:`PREVIEW_EXTENSION` from here without loading it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from bot.diffusion.families import SD1, LatentColours
from bot.imaging.grid import compose_grid, grid_shape

if TYPE_CHECKING:
    import torch

GENERIC_SPREAD = 2.0
"""The generic projection maps mean ± this many standard deviations of a channel onto 0..255."""

PREVIEW_FORMAT = "JPEG"
PREVIEW_EXTENSION = "jpg"
PREVIEW_QUALITY = 80
"""JPEG: a 256² grid encodes in about a millisecond, in 5-30 kB (30 for pure noise)."""


SD1_COLOURS = SD1.colours


def latents_to_rgb(latents: torch.Tensor, colours: LatentColours | None = SD1_COLOURS) -> torch.Tensor:
    """``(B, C, h, w)`` latents → ``(B, h, w, 3)`` uint8 RGB on the CPU, one cheap linear map.

    ``colours`` with as many factors as there are channels map them to RGB; otherwise (or with
    None) the first three channels are shown (repeated when there are fewer), each normalised over
    the image. The input is never modified.
    """
    import torch

    if latents.ndim != 4:
        raise ValueError(f"expected latents of shape (batch, channels, height, width), got {tuple(latents.shape)}")
    x = latents.detach().to(device="cpu", dtype=torch.float32)
    if colours is not None and x.shape[1] == colours.channels:
        factors = torch.tensor(colours.factors, dtype=torch.float32)
        bias = torch.tensor(colours.bias, dtype=torch.float32)
        rgb = (torch.einsum("bchw,cr->bhwr", x, factors) + bias + 1.0) / 2.0
    else:
        channels = x[:, :3] if x.shape[1] >= 3 else x[:, :1].expand(-1, 3, -1, -1)
        mean = channels.mean(dim=(2, 3), keepdim=True)
        std = channels.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        rgb = (0.5 + (channels - mean) / (2.0 * GENERIC_SPREAD * std)).permute(0, 2, 3, 1)
    return rgb.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled (up or down, keeping its aspect) to fit in ``box``."""
    scale = min(box[0] / size[0], box[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def latents_to_preview(
    latents: torch.Tensor, *, colours: LatentColours | None = SD1_COLOURS, max_side: int = 256
) -> bytes:
    """Encode a preview of a batch of latents: a numbered 1-4 tile grid, long side ``max_side``.

    Every tile is decoded with :func:`latents_to_rgb`, scaled so that the grid's long side is
    ``max_side`` (latents are 1/8 of the image: a 512² grid's preview would otherwise be 128²),
    laid out by :func:`bot.imaging.grid.compose_grid` and encoded as :data:`PREVIEW_FORMAT`. A few
    milliseconds; ``ValueError`` for more than four images or a bad shape.
    """
    if max_side < 16:
        raise ValueError(f"max_side must be at least 16, got {max_side}")
    pixels = latents_to_rgb(latents, colours).numpy()
    columns, rows = grid_shape(len(pixels))
    height, width = pixels.shape[1:3]
    cell = _fit((width, height), (max_side // columns, max_side // rows))
    tiles = [Image.fromarray(tile).resize(cell, Image.Resampling.BILINEAR) for tile in pixels]
    buffer = io.BytesIO()
    compose_grid(tiles, numbered=True).save(buffer, format=PREVIEW_FORMAT, quality=PREVIEW_QUALITY)
    return buffer.getvalue()
