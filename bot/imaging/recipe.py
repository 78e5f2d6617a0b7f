"""The recipe inside every PNG seedgrid writes: A1111 ``parameters`` text and a ``seedgrid`` JSON chunk.

Two text chunks, so that both people and tools can rebuild an image:

- ``parameters``, the convention every SD tool reads (AUTOMATIC1111, ComfyUI, civitai)::

      {prompt}
      Negative prompt: {negative}
      Steps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15, RNG: CPU, Version: seedgrid 0.1.0

  keys in A1111's order (its extras go between ``RNG`` and ``Version``), a value containing ``,``
  ``:`` or a newline JSON-quoted, as A1111's ``quote()`` does. A grid's ``parameters`` describe
  tile 1 and list every tile's seed in ``Tile seeds``.
- ``seedgrid``: the full :class:`Recipe` as JSON (every tile's prompt and seed, the model's name
  and id, family, scheduler, steps, guidance, size, and for derived images the strength, the
  parent and the source tile's own recipe).

Text that is not Latin-1 goes in an iTXt chunk (UTF-8), as PNG requires and Pillow does. Reading
(:func:`read_text_chunks`, :func:`parse_parameters`, :meth:`Recipe.from_json`) takes any bytes: a
chunk that is too big, compressed beyond a limit, malformed or of the wrong type is skipped, never
raised on. Nothing here is shown to members; whoever shows a recipe escapes it.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from typing import Any

from bot.imaging.png import SIGNATURE
from bot.jobs import SEED_LIMIT, JobKind, JobRequest, Tile

PARAMETERS_KEY = "parameters"
RECIPE_KEY = "seedgrid"
RECIPE_FORMAT = 1
"""The ``seedgrid`` chunk's format number (``"format"``): bumped when a field changes meaning."""

MAX_TEXT = 64 * 1024
"""The longest text chunk value read (characters or bytes); longer ones, and anything that inflates past
it, are skipped."""
MAX_CHUNKS = 1024
"""Chunks looked at in one file before giving up (a file of many tiny chunks is not worth reading)."""
MAX_TILES = 8
MAX_DEPTH = 8
"""How many derived images deep a ``source`` chain may go (an upscale of a variation of …)."""

_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
"""A1111's ``re_param`` (modules/infotext_utils.py): one ``key: value`` of the last line."""

SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSinglestepScheduler": "DPM++ SDE",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "DEISMultistepScheduler": "DEIS",
    "FlowMatchEulerDiscreteScheduler": "Euler",
}
"""diffusers scheduler class → the sampler name A1111 writes (the class name itself when not listed)."""


@cache
def seedgrid_version() -> str:
    try:
        return metadata.version("seedgrid")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0"


# --- A1111 parameters ---------------------------------------------------------------------------


def quote(value: object) -> str:
    """A1111's ``quote()``: JSON when the value has ``,`` ``:`` or a newline, else as it is."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(value: str) -> str:
    """A1111's ``unquote()``: a JSON string back to text; anything else as it is."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        loaded = json.loads(value)
    except ValueError:
        return value
    return loaded if isinstance(loaded, str) else value


def format_parameters(prompt: str, negative: str, settings: Mapping[str, object | None]) -> str:
    """The ``parameters`` text: the prompt, ``Negative prompt:`` when there is one, the settings on the last
    line (``None`` values left out), as A1111's ``create_infotext`` writes them."""
    line = ", ".join(f"{key}: {quote(value)}" for key, value in settings.items() if value is not None)
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}"


@dataclass(frozen=True, slots=True)
class Parameters:
    """A ``parameters`` text read by A1111's rules."""

    prompt: str
    negative: str
    settings: dict[str, str] = field(default_factory=dict)

    def get_int(self, key: str) -> int | None:
        try:
            return int(self.settings[key].strip())
        except (KeyError, ValueError):
            return None

    def get_float(self, key: str) -> float | None:
        try:
            value = float(self.settings[key].strip())
        except (KeyError, ValueError):
            return None
        return value if math.isfinite(value) else None

    def size(self) -> tuple[int, int] | None:
        match = re.fullmatch(r"\s*(\d{1,5})\s*x\s*(\d{1,5})\s*", self.settings.get("Size", ""))
        return (int(match[1]), int(match[2])) if match else None


def parse_parameters(text: str) -> Parameters:
    """A1111's ``parse_generation_parameters``: the last line holds the settings only when it has at least three
    ``key: value`` pairs; the lines before are the prompt up to a line starting ``Negative prompt:``."""
    *lines, last = text[:MAX_TEXT].strip().split("\n")
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt, negative, in_negative = "", "", False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[16:].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    settings = {key: unquote(value) for key, value in _PARAM.findall(last)}
    return Parameters(prompt, negative, settings)


# --- the recipe ---------------------------------------------------------------------------------


class RecipeError(ValueError):
    """A ``seedgrid`` chunk that is not a recipe this version can read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """Everything that made an image (a grid, a tile, an upscale), and nothing about who asked for it."""

    kind: str
    """imagine | refine | upscale | vary (:class:`bot.jobs.JobKind`)."""
    model: str
    """The configured model's name (``[[models]] name``)."""
    model_id: str
    family: str
    scheduler: str
    negative: str
    steps: int
    guidance: float
    width: int
    height: int
    tiles: tuple[Tile, ...]
    strength: float | None = None
    """Image-to-image strength, for derived images."""
    parent_job: int | None = None
    parent_tile: int | None = None
    source: Recipe | None = None
    """The recipe of the one tile a derived image was drawn from."""
    upscaler: str = ""
    """The dedicated upscaler (Hub id or folder) that enlarged ``source``; empty: the hires pass, or none."""
    noise_level: int | None = None
    """The noise that upscaler added to the source tile first (with ``upscaler`` only)."""
    version: str = field(default_factory=seedgrid_version)

    @classmethod
    def of(
        cls,
        request: JobRequest,
        *,
        family: str,
        scheduler: str,
        tiles: tuple[Tile, ...] | None = None,
        source: Recipe | None = None,
    ) -> Recipe:
        """The recipe of a job's images (``tiles``: the job's own by default; ``source``: read from the request)."""
        if source is None and request.source:
            source = cls.from_json(request.source)
        return cls(
            kind=request.kind.value,
            model=request.model,
            model_id=request.model_id,
            family=family,
            scheduler=scheduler,
            negative=request.negative,
            steps=request.steps,
            guidance=request.guidance,
            width=request.width,
            height=request.height,
            tiles=tiles if tiles is not None else request.tiles(),
            strength=request.strength if request.source and not request.upscaler else None,
            parent_job=request.parent_job if request.kind is not JobKind.IMAGINE else None,
            parent_tile=request.parent_tile if request.kind is not JobKind.IMAGINE else None,
            source=source,
            upscaler=request.upscaler,
            noise_level=request.noise_level if request.upscaler else None,
        )

    @property
    def depth(self) -> int:
        """How many source tiles stand behind this image (0 for a grid drawn from noise)."""
        return 0 if self.source is None else 1 + self.source.depth

    def tile(self, index: int) -> Recipe:
        """The recipe of tile ``index`` (1-based) on its own."""
        return replace(self, tiles=(self.tiles[index - 1],))

    # --- as text ---

    def parameters(self) -> str:
        """The A1111 ``parameters`` text (tile 1's prompt and seed; a grid lists every seed)."""
        first = self.tiles[0]
        settings: dict[str, object | None] = {
            "Steps": self.steps,
            "Sampler": SAMPLERS.get(self.scheduler, self.scheduler or None),
            "CFG scale": f"{self.guidance:g}",
            "Seed": first.seed,
            "Size": f"{self.width}x{self.height}",
            "Model": self.model or self.model_id or None,
            "Denoising strength": None if self.strength is None else f"{self.strength:g}",
            "RNG": "CPU",
            "Tile seeds": ", ".join(str(t.seed) for t in self.tiles) if len(self.tiles) > 1 else None,
            "Hires upscale": self._upscale_factor(),
            "Hires upscaler": self.upscaler or None,
            "Version": f"seedgrid {self.version}",
        }
        return format_parameters(first.prompt, self.negative, settings)

    def _upscale_factor(self) -> str | None:
        if self.kind != JobKind.UPSCALE.value or self.source is None or not self.source.width:
            return None
        return f"{self.width / self.source.width:g}"

    def to_dict(self) -> dict[str, Any]:
        upscaler = {"upscaler": self.upscaler, "noise_level": self.noise_level} if self.upscaler else {}
        return {
            "format": RECIPE_FORMAT,
            "seedgrid": self.version,
            "kind": self.kind,
            "model": self.model,
            "model_id": self.model_id,
            "family": self.family,
            "scheduler": self.scheduler,
            "negative": self.negative,
            "steps": self.steps,
            "guidance": self.guidance,
            "width": self.width,
            "height": self.height,
            "tiles": [{"prompt": t.prompt, "seed": t.seed} for t in self.tiles],
            "strength": self.strength,
            "parent": None
            if self.parent_job is None and self.parent_tile is None
            else {"job": self.parent_job, "tile": self.parent_tile},
            "source": None if self.source is None else self.source.to_dict(),
        } | upscaler

    def to_json(self) -> str:
        """The ``seedgrid`` chunk: compact, ASCII-only JSON (so it always fits a tEXt chunk)."""
        return json.dumps(self.to_dict(), ensure_ascii=True, separators=(",", ":"))

    def metadata(self) -> dict[str, str]:
        """The text chunks of a PNG of this recipe's images."""
        return {PARAMETERS_KEY: self.parameters(), RECIPE_KEY: self.to_json()}

    # --- from text ---

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """A ``seedgrid`` chunk's recipe; :class:`RecipeError` for anything malformed, too big or out of range."""
        if len(text) > MAX_TEXT:
            raise RecipeError("the recipe is too long")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RecipeError(f"not JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object, depth: int = 0) -> Recipe:
        if depth > MAX_DEPTH:
            raise RecipeError("the chain of source recipes is too long")
        if not isinstance(data, dict):
            raise RecipeError("a recipe is a JSON object")
        kind = _text(data, "kind")
        if kind not in {k.value for k in JobKind}:
            raise RecipeError(f"unknown kind {kind[:40]!r}")
        tiles_data = data.get("tiles")
        if not isinstance(tiles_data, list) or not 1 <= len(tiles_data) <= MAX_TILES:
            raise RecipeError(f"tiles: 1 to {MAX_TILES} expected")
        tiles = []
        for item in tiles_data:
            if not isinstance(item, dict):
                raise RecipeError("a tile is a JSON object")
            tiles.append(Tile(_text(item, "prompt"), _int(item, "seed", 0, SEED_LIMIT - 1)))
        parent = data.get("parent")
        if parent is not None and not isinstance(parent, dict):
            raise RecipeError("parent: a JSON object expected")
        source = data.get("source")
        strength = data.get("strength")
        if strength is not None and (not isinstance(strength, int | float) or not 0 < strength <= 1):
            raise RecipeError("strength: a number in (0, 1] expected")
        upscaler = _text(data, "upscaler")
        if upscaler and source is None:
            raise RecipeError("upscaler: only for an image drawn from a source tile")
        return cls(
            kind=kind,
            model=_text(data, "model"),
            model_id=_text(data, "model_id"),
            family=_text(data, "family"),
            scheduler=_text(data, "scheduler"),
            negative=_text(data, "negative"),
            steps=_int(data, "steps", 1, 1000),
            guidance=_float(data, "guidance"),
            width=_int(data, "width", 8, 8192),
            height=_int(data, "height", 8, 8192),
            tiles=tuple(tiles),
            strength=None if strength is None else float(strength),
            parent_job=None if parent is None else _optional_int(parent, "job"),
            parent_tile=None if parent is None else _optional_int(parent, "tile"),
            source=None if source is None else cls.from_dict(source, depth + 1),
            upscaler=upscaler,
            noise_level=_int(data, "noise_level", 0, 1000) if upscaler else None,
            version=_text(data, "seedgrid"),
        )


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise RecipeError(f"{key}: text expected")
    return value


def _int(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecipeError(f"{key}: a whole number in {low}..{high} expected")
    return value


def _optional_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    return _int(data, key, 0, 2**63 - 1)


def _float(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecipeError(f"{key}: a number expected")
    return float(value)


# --- PNG text chunks ----------------------------------------------------------------------------


def read_text_chunks(data: bytes, *, keys: frozenset[str] = frozenset({PARAMETERS_KEY, RECIPE_KEY})) -> dict[str, str]:
    """The text chunks named in ``keys`` of a PNG file (the first of each), read defensively.

    Anything that is not a PNG gives ``{}``; a chunk that is truncated, too long, inflates past
    :data:`MAX_TEXT` or does not decode is skipped. Never raises on any input.
    """
    found: dict[str, str] = {}
    if not data.startswith(SIGNATURE):
        return found
    offset = len(SIGNATURE)
    for _ in range(MAX_CHUNKS):
        if offset + 8 > len(data):
            break
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body_start = offset + 8
        offset = body_start + length + 4
        if kind == b"IEND" or offset > len(data):
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt") or length > 4 * MAX_TEXT:
            continue
        entry = _decode_text(kind, data[body_start : body_start + length])
        if entry is not None and entry[0] in keys and entry[0] not in found:
            found[entry[0]] = entry[1]
    return found


def _decode_text(kind: bytes, body: bytes) -> tuple[str, str] | None:
    name, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(name) <= 79:
        return None
    key = name.decode("latin-1")
    try:
        if kind == b"tEXt":
            value = rest.decode("latin-1")
        elif kind == b"zTXt":
            value = _inflate(rest[1:]).decode("latin-1")
        else:  # iTXt: compression flag, method, language\0, translated keyword\0, text
            compressed = rest[:1] == b"\1"
            _, _, tail = rest[2:].partition(b"\0")
            _, _, text = tail.partition(b"\0")
            value = (_inflate(text) if compressed else text).decode("utf-8")
    except (ValueError, zlib.error):
        return None
    return (key, value) if len(value) <= MAX_TEXT else None


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_TEXT + 1)
    if len(out) > MAX_TEXT or inflater.unconsumed_tail:
        raise ValueError("the text inflates past the limit")
    return out


def read_recipe(png: bytes) -> Recipe | None:
    """The ``seedgrid`` recipe of a PNG, or None when it has none (or an unreadable one)."""
    text = read_text_chunks(png, keys=frozenset({RECIPE_KEY})).get(RECIPE_KEY)
    if text is None:
        return None
    try:
        return Recipe.from_json(text)
    except RecipeError:
        return None
