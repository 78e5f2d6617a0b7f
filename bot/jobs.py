"""Jobs and results: the plain data that flows from the cogs through the executor.

Everything here is frozen and free of Discord and torch, so it can be stored, logged,
compared in tests and sent to a remote worker (:mod:`bot.remote.wire`) unchanged.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.imaging.tiles import Tiles

SEED_LIMIT = 2**32
"""Seeds live in ``0 <= seed < 2**32`` so that members can type them back in."""

GRID_TILES = 4
MAX_SUFFIXES = 4


def random_seed() -> int:
    """A fresh seed for a new grid, drawn so that ``seed .. seed+3`` need no wrap-around."""
    return secrets.randbelow(SEED_LIMIT - GRID_TILES + 1)


def tile_seed(base: int, index: int) -> int:
    """The seed of tile ``index`` (0-based) of a grid that starts at ``base``, wrapping at 2**32."""
    return (base + index) % SEED_LIMIT


class RenderCancelled(Exception):  # noqa: N818 - it is an outcome, not an error
    """A render stopped early because its job was cancelled."""


class JobKind(enum.StrEnum):
    IMAGINE = "imagine"
    """Four tiles, seeds ``seed .. seed+3``, one prompt."""
    REFINE = "refine"
    """One tile per suffix, every tile on the parent tile's seed."""
    UPSCALE = "upscale"
    """One tile, the parent tile's prompt and seed, at a multiple of its size: the tile enlarged, then an
    image-to-image pass at ``strength`` (a "hires" pass)."""
    VARY = "vary"
    """Four tiles, seeds ``seed .. seed+3``, each an image-to-image pass from the parent tile at ``strength``."""


DERIVED_KINDS = frozenset({JobKind.UPSCALE, JobKind.VARY})
"""Kinds drawn from a source tile (:attr:`JobRequest.source`) rather than from noise alone."""


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended_without_images(self) -> bool:
        """Failed or cancelled: what is left to do is to say so."""
        return self in (JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Tile:
    """One image of a grid: the exact prompt and seed that made it."""

    prompt: str
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Sampling:
    """How every tile of a job is drawn (what a request asks for and the pipeline call receives)."""

    negative: str
    steps: int
    guidance: float
    width: int
    height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GenParams(Sampling):
    """Everything the pipeline needs for one batched call: one entry in ``tiles`` per image."""

    tiles: tuple[Tile, ...]

    @property
    def prompts(self) -> list[str]:
        return [t.prompt for t in self.tiles]

    @property
    def seeds(self) -> list[int]:
        return [t.seed for t in self.tiles]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequest(Sampling):
    """What a member (or the CLI) asked for, before it gets an id from the store.

    ``prompt`` is the base prompt. For :attr:`JobKind.REFINE` it is the parent tile's full
    prompt, ``seed`` is the parent tile's seed, and each suffix gives one tile.
    """

    kind: JobKind
    prompt: str
    seed: int
    suffixes: tuple[str, ...] = ()
    model: str = ""
    """The configured model's name (``[[models]] name``) that draws it; empty means the default model."""
    model_id: str = ""
    """That model's Hub id or folder when the job was made (for the record; the name picks the model)."""
    user_id: int = 0
    guild_id: int | None = None
    channel_id: int | None = None
    parent_job: int | None = None
    parent_tile: int | None = None
    policy: str = "allow"
    """What to do with tiles the safety checker flags: allow | blur | spoiler (decided by the channel)."""
    strength: float = 0.0
    """Image-to-image strength (0 < strength <= 1) when the job is drawn from :attr:`source`; else 0."""
    source: str = ""
    """The recipe (:class:`bot.imaging.recipe.Recipe` JSON) of the one tile this job is drawn from: upscale,
    vary, and refining such a job's tile. The source is drawn again from its recipe, so any worker can run it."""
    locale: str = ""
    """The Discord locale of the member who asked (``"ko"``, ``"en-US"``): the job's messages are in that
    language. Empty when unknown (the CLI, jobs from before): the server's language, else English."""
    upscaler: str = ""
    """The dedicated upscaler (``[upscale] model``: its Hub id or folder) that enlarges the source tile, instead of
    the image-to-image pass (``strength`` is then 0); empty: the hires pass, or no upscale at all."""
    noise_level: int = 0
    """The noise the ×4 upscaler adds to the source tile first (``[upscale] noise_level``); only with ``upscaler``."""
    private: bool = False
    """Shown to the member only (``/preferences private``, where the server allows it): the job's message is
    ephemeral, and after Discord's 15 minutes the outcome goes to the member's direct messages, never the channel."""

    def __post_init__(self) -> None:
        if not 0 <= self.seed < SEED_LIMIT:
            raise ValueError(f"seed must be in 0..{SEED_LIMIT - 1}, got {self.seed}")
        if self.kind is JobKind.REFINE and not 1 <= len(self.suffixes) <= MAX_SUFFIXES:
            raise ValueError(f"a refine job needs 1 to {MAX_SUFFIXES} suffixes, got {len(self.suffixes)}")
        if self.kind is JobKind.IMAGINE and self.suffixes:
            raise ValueError("an imagine job takes no suffixes")
        if self.kind in DERIVED_KINDS and (self.suffixes or not self.source):
            raise ValueError(f"a {self.kind} job takes no suffixes and needs the recipe of its source tile")
        if self.upscaler and not self.source:
            raise ValueError("an upscaler job needs the recipe of its source tile")
        if self.source and not self.upscaler and not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1] for a job drawn from a source tile, got {self.strength}")

    def tiles(self) -> tuple[Tile, ...]:
        if self.kind is JobKind.REFINE:
            return tuple(Tile(self.prompt + suffix, self.seed) for suffix in self.suffixes)
        if self.kind is JobKind.UPSCALE:
            return (Tile(self.prompt, self.seed),)
        return tuple(Tile(self.prompt, tile_seed(self.seed, i)) for i in range(GRID_TILES))

    def params(self) -> GenParams:
        sampling = {f.name: getattr(self, f.name) for f in fields(Sampling)}
        return GenParams(tiles=self.tiles(), **sampling)


@dataclass(frozen=True, slots=True)
class Job:
    """A stored request: the id is the store's, and appears in every button's custom_id."""

    id: int
    request: JobRequest
    status: JobStatus = JobStatus.QUEUED
    message_id: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    """Wall-clock times (``time.time()``) recorded by the store."""
    delivery_started_at: float | None = None
    """When posting the outcome began; set, and not delivered, means: look before posting again."""
    reply_token: str | None = field(default=None, repr=False)
    """What the front end needs to reach the job's message again (Discord: the interaction token)."""
    reply_token_at: float | None = None
    error: str | None = None
    """Why it failed (a sentence for the member), when it did."""

    @property
    def tiles(self) -> tuple[Tile, ...]:
        return self.request.tiles()


@dataclass(frozen=True, slots=True)
class JobResult:
    """A finished job: the encoded grid (encoded off the event loop), its tiles, and how long it took."""

    job_id: int
    tiles: tuple[Tile, ...]
    grid_png: bytes
    images: Tiles
    """The tiles on their own; PNG-encoded only when asked for (see :mod:`bot.imaging.tiles`)."""
    elapsed: float
    """Seconds the pipeline call itself took (the figure shown to members)."""
    nsfw: tuple[bool, ...] = field(default=())
