"""Recipes in PNGs (``bot/imaging/recipe.py``): A1111 ``parameters`` written and read by A1111's rules, the
``seedgrid`` JSON chunk, iTXt for text that is not Latin-1, and hostile files that never crash the reader."""

from __future__ import annotations

import io
import json
import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.imaging.grid import encode_png
from bot.imaging.png import SIGNATURE
from bot.imaging.recipe import (
    MAX_TEXT,
    PARAMETERS_KEY,
    RECIPE_KEY,
    Recipe,
    RecipeError,
    format_parameters,
    parse_parameters,
    quote,
    read_recipe,
    read_text_chunks,
)
from bot.inputs import imagine_request
from bot.jobs import Tile
from tests.bot.imaging.test_png import chunks
from tests.presets import SD15

A1111_INFOTEXT = (
    "masterpiece, a castle on a hill, (detailed:1.2)\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 512x768, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54", '
    "Version: v1.10.1"
)


def recipe(**changes: object) -> Recipe:
    request = imagine_request(SD15, prompt="a lighthouse, at dusk", negative="blurry", seed=42, steps=3)
    made = Recipe.of(request, family="sd1", scheduler="EulerDiscreteScheduler")
    return Recipe(**{**{f: getattr(made, f) for f in made.__dataclass_fields__}, **changes})


def png(metadata: dict[str, str] | None = None) -> bytes:
    return encode_png(Image.new("RGB", (8, 8), (10, 20, 30)), metadata=metadata)


def raw_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def with_chunks(*extra: bytes) -> bytes:
    """An 8×8 PNG with ``extra`` chunks right after IHDR."""
    data = png()
    ihdr_end = 8 + 12 + 13
    return data[:ihdr_end] + b"".join(extra) + data[ihdr_end:]


# --- A1111 parameters ---


def test_a_grid_recipe_reads_as_a1111_writes_it() -> None:
    text = recipe().parameters()
    prompt, negative, settings_line = text.split("\n")
    assert prompt == "a lighthouse, at dusk"
    assert negative == "Negative prompt: blurry"
    assert settings_line.startswith("Steps: 3, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: ")
    assert settings_line.endswith('RNG: CPU, Tile seeds: "42, 43, 44, 45", Version: seedgrid ' + recipe().version)
    parsed = parse_parameters(text)
    assert (parsed.prompt, parsed.negative) == ("a lighthouse, at dusk", "blurry")
    assert parsed.get_int("Seed") == 42 and parsed.size() == (512, 512) and parsed.get_float("CFG scale") == 7.5
    assert parsed.settings["Tile seeds"] == "42, 43, 44, 45"


def test_one_tile_has_its_own_seed_and_no_seed_list() -> None:
    text = recipe().tile(3).parameters()
    assert "Seed: 44," in text and "Tile seeds" not in text


def test_a_real_a1111_infotext_is_parsed() -> None:
    parsed = parse_parameters(A1111_INFOTEXT)
    assert parsed.prompt == "masterpiece, a castle on a hill, (detailed:1.2)"
    assert parsed.negative == "blurry, lowres"
    assert parsed.settings["Sampler"] == "DPM++ 2M"
    assert parsed.settings["Lora hashes"] == "add_detail: 7c6bad76eb54"
    assert parsed.size() == (512, 768) and parsed.get_int("Seed") == 1234


def test_a_last_line_with_fewer_than_three_pairs_is_prompt() -> None:
    parsed = parse_parameters("a cat\nstyle: watercolor, mood: calm")
    assert parsed.prompt == "a cat\nstyle: watercolor, mood: calm"
    assert parsed.settings == {}


def test_values_with_commas_colons_or_newlines_are_json_quoted() -> None:
    assert quote("plain") == "plain"
    assert quote("a, b") == '"a, b"'
    assert quote("a: b") == '"a: b"'
    assert quote('say "hi"\nbye') == '"say \\"hi\\"\\nbye"'
    text = format_parameters("p", "", {"Steps": 1, "Model": 'odd, "name": x\ny', "Seed": 2, "Empty": None})
    assert "Empty" not in text
    assert parse_parameters(text).settings == {"Steps": "1", "Model": 'odd, "name": x\ny', "Seed": "2"}


_LINE = (
    st.text(
        st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85\xa0\u1680"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(lambda line: bool(line) and not line.startswith("Negative prompt:"))
)
_PROMPT = st.lists(_LINE, min_size=1, max_size=4).map("\n".join)
"""Prompts with commas, quotes, colons, newlines and any script, in the form A1111 keeps a prompt (each line
stripped; no line starting ``Negative prompt:``, which A1111 would read as the negative)."""
_VALUE = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
    lambda v: v == v.strip() and "\n" not in v.strip() and "\r" not in v
)


@settings(max_examples=200, deadline=None)
@given(prompt=_PROMPT, negative=st.one_of(st.just(""), _PROMPT), model=_VALUE, seed=st.integers(0, 2**32 - 1))
def test_parameters_round_trip_through_the_a1111_parser(prompt: str, negative: str, model: str, seed: int) -> None:
    made = recipe(tiles=(Tile(prompt, seed),), negative=negative, model=model)
    parsed = parse_parameters(made.parameters())
    assert (parsed.prompt, parsed.negative) == (prompt, negative)
    assert parsed.settings["Model"] == model
    assert parsed.get_int("Seed") == seed and parsed.settings["RNG"] == "CPU"


@settings(max_examples=60, deadline=None)
@given(prompt=_PROMPT, negative=st.one_of(st.just(""), _PROMPT))
def test_recipes_round_trip_through_a_png_and_pillow_reads_them(prompt: str, negative: str) -> None:
    made = recipe(tiles=(Tile(prompt, 1), Tile(prompt + " again", 2)), negative=negative)
    data = png(made.metadata())
    found = read_text_chunks(data)
    assert found[PARAMETERS_KEY] == made.parameters()
    assert Recipe.from_json(found[RECIPE_KEY]) == made
    assert read_recipe(data) == made
    assert Image.open(io.BytesIO(data)).text[PARAMETERS_KEY] == made.parameters()  # type: ignore[attr-defined]
    kinds = {body.split(b"\0")[0]: kind for kind, body in chunks(data) if kind in (b"tEXt", b"iTXt")}
    latin1 = all(ord(ch) < 256 for ch in made.parameters())
    assert kinds[b"parameters"] == (b"tEXt" if latin1 else b"iTXt")
    assert kinds[b"seedgrid"] == b"tEXt"  # ASCII JSON


def test_derived_recipes_keep_their_source() -> None:
    source = recipe().tile(2)
    derived = recipe(
        kind="upscale", width=1024, height=1024, strength=0.35, parent_job=7, parent_tile=2, source=source,
        tiles=(source.tiles[0],),
    )  # fmt: skip
    again = Recipe.from_json(derived.to_json())
    assert again == derived and again.source == source
    assert "Denoising strength: 0.35" in derived.parameters() and "Hires upscale: 2" in derived.parameters()
    assert json.loads(derived.to_json())["parent"] == {"job": 7, "tile": 2}


# --- hostile input ---


def test_what_is_not_a_png_has_no_recipe() -> None:
    assert read_text_chunks(b"") == {} and read_text_chunks(b"GIF89a" + bytes(100)) == {}
    assert read_recipe(b"\xff\xd8\xff\xe0 a jpeg") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_after_the_signature_never_raise(tail: bytes) -> None:
    read_text_chunks(SIGNATURE + tail)
    read_recipe(SIGNATURE + tail)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_chunk_body_never_raises(body: bytes) -> None:
    for kind in (b"tEXt", b"zTXt", b"iTXt"):
        read_text_chunks(with_chunks(raw_chunk(kind, b"parameters\0" + body)))
        read_text_chunks(with_chunks(raw_chunk(kind, b"seedgrid\0" + body)))


def test_huge_and_inflating_chunks_are_skipped() -> None:
    huge = raw_chunk(b"tEXt", b"parameters\0" + b"a" * (MAX_TEXT + 1))
    bomb = raw_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"b" * (50 * MAX_TEXT), 9))
    itxt_bomb = raw_chunk(b"iTXt", b"parameters\0\1\0\0\0" + zlib.compress(b"c" * (50 * MAX_TEXT), 9))
    ok = raw_chunk(b"tEXt", b"parameters\0fine")
    assert read_text_chunks(with_chunks(huge, bomb, itxt_bomb, ok)) == {PARAMETERS_KEY: "fine"}


def test_a_truncated_file_gives_what_was_read() -> None:
    data = png(recipe().metadata())
    for cut in (9, 20, 40, len(data) // 2, len(data) - 3):
        read_text_chunks(data[:cut])


def test_malformed_recipes_are_refused_not_raised() -> None:
    good = recipe().to_dict()
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({**good, "kind": "delete"}),
        json.dumps({**good, "tiles": []}),
        json.dumps({**good, "tiles": [{"prompt": "x", "seed": -1}]}),
        json.dumps({**good, "tiles": [{"prompt": 5, "seed": 1}]}),
        json.dumps({**good, "steps": True}),
        json.dumps({**good, "guidance": "NaN"}),
        json.dumps({**good, "strength": 3}),
        json.dumps({**good, "width": 10**9}),
        "[" * 100_000 + "]" * 100_000,
        "x" * (MAX_TEXT + 1),
    ]
    nested: dict[str, object] = dict(good)
    for _ in range(20):
        nested = {**good, "source": nested}
    bad.append(json.dumps(nested))
    for text in bad:
        try:
            Recipe.from_json(text)
        except RecipeError:
            continue
        raise AssertionError(f"accepted {text[:80]!r}")
    assert read_recipe(png({RECIPE_KEY: "{broken"})) is None
