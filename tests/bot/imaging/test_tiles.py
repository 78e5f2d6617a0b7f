"""Tiles (``bot/imaging/tiles.py``) are PNG-encoded lazily, once, and compare by their bytes."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from bot.imaging.grid import encode_png
from bot.imaging.tiles import Tiles


def image(value: int) -> Image.Image:
    return Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8))


def test_tiles_encode_on_first_request_and_only_once() -> None:
    tiles = Tiles([image(10), image(200)])
    assert "not encoded" in repr(tiles)
    first = tiles.pngs()
    assert tiles.pngs() is first
    assert first == (encode_png(image(10)), encode_png(image(200)))
    assert len(tiles) == 2


def test_tiles_from_pngs_decode_to_the_same_pixels() -> None:
    tiles = Tiles.from_pngs([encode_png(image(7))])
    (decoded,) = tiles.images()
    assert decoded.mode == "RGB"
    assert np.array_equal(np.asarray(decoded), np.asarray(image(7)))
    assert tiles == Tiles([image(7)])
    assert tiles != Tiles([image(8)])
    assert len(Tiles()) == 0


def test_tiles_encode_once_when_threads_race() -> None:
    tiles = Tiles([image(v) for v in range(4)])
    seen: list[tuple[bytes, ...]] = []
    threads = [threading.Thread(target=lambda: seen.append(tiles.pngs())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s is seen[0] for s in seen)
    assert Image.open(io.BytesIO(seen[0][3])).size == (8, 8)


def test_tiles_refuse_mismatched_images_and_pngs() -> None:
    with pytest.raises(ValueError, match="2 images but 1 PNGs"):
        Tiles([image(1), image(2)], pngs=[b"x"])
