"""The separate tiles of a finished grid, encoded as PNG only when somebody asks for them.

Only the grid is posted to Discord; the tiles on their own are wanted by the output folder,
the CLI, the blur policy and remote workers that are asked for them. Encoding four 512² PNGs
costs about as much as encoding the grid, so a job that needs none of them does not pay it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence

from PIL import Image

from bot.imaging.grid import encode_png


class Tiles:
    """A result's tiles, as images and (lazily, once, thread-safely) as PNG bytes. Blocking: call off the loop."""

    __slots__ = ("_images", "_lock", "_metadata", "_pngs")

    def __init__(
        self,
        images: Sequence[Image.Image] = (),
        *,
        pngs: Sequence[bytes] | None = None,
        metadata: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        """``metadata[i]``: the text chunks of tile *i*'s PNG (its recipe, :mod:`bot.imaging.recipe`)."""
        if images and pngs is not None and len(images) != len(pngs):
            raise ValueError(f"{len(images)} images but {len(pngs)} PNGs")
        if metadata is not None and len(metadata) != len(images):
            raise ValueError(f"{len(images)} images but {len(metadata)} metadata entries")
        self._images = tuple(images) or None
        self._metadata = tuple(metadata) if metadata is not None else None
        self._pngs = tuple(pngs) if pngs is not None else None
        if self._images is None and self._pngs is None:
            self._pngs = ()
        self._lock = threading.Lock()

    @classmethod
    def from_pngs(cls, pngs: Sequence[bytes]) -> Tiles:
        return cls(pngs=pngs)

    def __len__(self) -> int:
        if self._pngs is not None:
            return len(self._pngs)
        assert self._images is not None
        return len(self._images)

    def pngs(self) -> tuple[bytes, ...]:
        """Every tile as PNG (encoded on the first call)."""
        with self._lock:
            if self._pngs is None:
                assert self._images is not None
                chunks = self._metadata or (None,) * len(self._images)
                self._pngs = tuple(encode_png(im, metadata=m) for im, m in zip(self._images, chunks, strict=True))
            return self._pngs

    def images(self) -> list[Image.Image]:
        """Every tile as an RGB image (the originals, or decoded from the PNGs)."""
        if self._images is not None:
            return list(self._images)
        return [_decode(png) for png in self.pngs()]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tiles):
            return NotImplemented
        return self.pngs() == other.pngs()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "encoded" if self._pngs is not None else "not encoded"
        return f"<Tiles {len(self)} ({state})>"


def _decode(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB")
