"""The fast PNG writer (``bot/imaging/png.py``): exact pixels, a valid zlib stream and chunk CRCs, any size,
every band split."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.imaging.png import encode_rgb


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        at += 12 + length
    return out


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    threads=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    smooth=st.booleans(),
)
def test_pixels_come_back_exactly(width: int, height: int, threads: int, seed: int, smooth: bool) -> None:
    rng = np.random.default_rng(seed)
    if smooth:
        y, x = np.mgrid[:height, :width]
        pixels = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    else:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    data = encode_rgb(Image.fromarray(pixels), threads=threads)
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == "RGB" and back.size == (width, height)
        assert np.array_equal(np.asarray(back), pixels)
    kinds = [kind for kind, _ in chunks(data)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    idat = dict(chunks(data))[b"IDAT"]
    raw = zlib.decompress(idat)  # checks the stream's adler32 too
    assert len(raw) == height * (3 * width + 1)


def test_two_threads_write_the_same_image_as_one_and_every_run_the_same_bytes() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    one, two = encode_rgb(image, threads=1), encode_rgb(image, threads=2)
    assert encode_rgb(image, threads=2) == two  # deterministic
    for data in (one, two):
        with Image.open(io.BytesIO(data)) as back:
            assert np.array_equal(np.asarray(back), pixels)


def test_metadata_becomes_text_chunks_and_other_modes_are_refused() -> None:
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    with Image.open(io.BytesIO(encode_rgb(image, metadata={"prompt": "a café", "seed": "7"}))) as back:
        assert back.info == {"prompt": "a café", "seed": "7"}
    with pytest.raises(ValueError, match="RGB images, got RGBA"):
        encode_rgb(Image.new("RGBA", (4, 4)))
