"""Turning what a member typed into a valid :class:`JobRequest`, or a clear refusal.

Pure functions, no Discord: the slash command, the refine modal and the CLI all call these,
and every refusal is a :class:`UserInputError` carrying a text for the member (:mod:`bot.texts`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import TypedDict

from bot.config import GenerationSettings, RefineSettings
from bot.jobs import MAX_SUFFIXES, SEED_LIMIT, JobKind, JobRequest, Tile, random_seed
from bot.texts import Text

MAX_PROMPT_LENGTH = 1000
"""Characters; the text encoder reads at most 77 tokens anyway."""

MAX_REFINED_PROMPT_LENGTH = 2000
"""A tile's prompt grows with every refinement; past this it is time for a fresh /imagine."""

_JOINERS = (",", ";", ".", ":", "!", "?", " ", "\t")


class Origin(TypedDict):
    """Who asked, and where: the member, the server (None in direct messages), the channel."""

    user_id: int
    guild_id: int | None
    channel_id: int | None


class UserInputError(ValueError):
    """Input a member can fix; ``text`` says how."""

    def __init__(self, key: str, /, **params: object) -> None:
        self.text = Text(key, **params)
        super().__init__(str(self.text))


def _visible(text: str) -> str:
    """Drop invisible format characters (zero-width spaces, direction marks) and collapse whitespace."""
    return " ".join("".join(ch for ch in text if unicodedata.category(ch) != "Cf").split())


def clean_prompt(text: str | None, *, negative: bool = False, required: bool = True) -> str:
    value = _visible(text or "")
    what = Text("input.what.negative" if negative else "input.what.prompt")
    if required and not value:
        raise UserInputError("input.empty", what=what)
    if len(value) > MAX_PROMPT_LENGTH:
        raise UserInputError("input.too_long", what=what, length=len(value), limit=MAX_PROMPT_LENGTH)
    return value


def imagine_request(
    gen: GenerationSettings,
    *,
    prompt: str,
    negative: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    size: str | None = None,
    user_id: int = 0,
    guild_id: int | None = None,
    channel_id: int | None = None,
    parent_job: int | None = None,
) -> JobRequest:
    """Validate /imagine's options against the config's bounds; defaults fill what is absent."""
    prompt = clean_prompt(prompt)
    negative_text = clean_prompt(negative, negative=True, required=False) or gen.default_negative
    if seed is None:
        seed = random_seed()
    elif not 0 <= seed < SEED_LIMIT:
        raise UserInputError("input.seed_range", max=SEED_LIMIT - 1)
    steps = gen.default_steps if steps is None else steps
    if not gen.min_steps <= steps <= gen.max_steps:
        raise UserInputError("input.steps_range", min=gen.min_steps, max=gen.max_steps)
    guidance = gen.default_guidance if guidance is None else float(guidance)
    if not gen.min_guidance <= guidance <= gen.max_guidance:
        raise UserInputError("input.guidance_range", min=gen.min_guidance, max=gen.max_guidance)
    try:
        chosen = gen.size(size)
    except KeyError:
        names = ", ".join(s.name for s in gen.sizes)
        raise UserInputError("input.unknown_size", size=size, names=names) from None
    return JobRequest(
        kind=JobKind.IMAGINE,
        prompt=prompt,
        negative=negative_text,
        seed=seed,
        steps=steps,
        guidance=guidance,
        width=chosen.width,
        height=chosen.height,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        parent_job=parent_job,
    )


def parse_suffixes(text: str, settings: RefineSettings) -> tuple[str, ...]:
    """One suffix per non-empty line, 1 to 4 of them, each within the configured length.

    A suffix that starts with a word gets a space in front (``a cat`` + ``artsy`` →
    ``a cat artsy``); one that starts with punctuation is kept as typed (``, artsy``).
    """
    lines = [_visible(line) for line in text.splitlines()]
    suffixes = [line for line in lines if line]
    if not suffixes:
        raise UserInputError("input.no_suffix")
    if len(suffixes) > MAX_SUFFIXES:
        raise UserInputError("input.too_many_suffixes", max=MAX_SUFFIXES, count=len(suffixes))
    for i, suffix in enumerate(suffixes, start=1):
        if len(suffix) > settings.max_suffix_length:
            raise UserInputError("input.suffix_too_long", line=i, length=len(suffix), max=settings.max_suffix_length)
    return tuple(s if s.startswith(_JOINERS) else f" {s}" for s in suffixes)


def refine_request(
    parent: JobRequest,
    *,
    parent_job: int,
    tile_index: int,
    tile: Tile,
    suffixes: tuple[str, ...],
    user_id: int = 0,
    guild_id: int | None = None,
    channel_id: int | None = None,
) -> JobRequest:
    """A refine job: every suffix re-runs ``tile``'s seed with the tile's own prompt + suffix."""
    prompt = tile.prompt
    if len(prompt) + max(len(s) for s in suffixes) > MAX_REFINED_PROMPT_LENGTH:
        raise UserInputError("input.refined_too_long", max=MAX_REFINED_PROMPT_LENGTH)
    return replace(
        parent,
        kind=JobKind.REFINE,
        prompt=prompt,
        seed=tile.seed,
        suffixes=suffixes,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        parent_job=parent_job,
        parent_tile=tile_index,
    )


def reroll_request(
    parent: JobRequest,
    *,
    parent_job: int,
    user_id: int = 0,
    guild_id: int | None = None,
    channel_id: int | None = None,
) -> JobRequest:
    """Same prompt and settings, four new random seeds."""
    return replace(
        parent,
        kind=JobKind.IMAGINE,
        suffixes=(),
        seed=random_seed(),
        user_id=user_id,
        guild_id=guild_id if guild_id is not None else parent.guild_id,
        channel_id=channel_id if channel_id is not None else parent.channel_id,
        parent_job=parent_job,
        parent_tile=None,
    )
