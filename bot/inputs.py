"""Turning what a member typed into a valid :class:`JobRequest`, or a clear refusal.

Pure functions, no Discord: the slash command, the refine modal and the CLI all call these,
and every refusal is a :class:`UserInputError` carrying a text for the member (:mod:`bot.texts`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import TypedDict

from bot.config import RefineSettings
from bot.diffusion.families import Guidance, NegativeWay
from bot.engine.models import Catalogue, ModelPreset
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


def choose_model(models: Catalogue, name: str | None) -> ModelPreset:
    """The model a member (or the CLI) named, or the default one; a clear refusal for an unknown name."""
    preset = models.get(name or "")
    if preset is None:
        raise UserInputError("input.unknown_model", model=name, names=", ".join(models.names))
    return preset


def imagine_request(
    preset: ModelPreset,
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
    """Validate /imagine's options against the model's preset and bounds; its defaults fill what is absent.

    A guidance given to a model that does not use guidance is not an error: it is dropped (and
    :func:`model_notes` says so to the member).
    """
    prompt = clean_prompt(prompt)
    negative_text = clean_prompt(negative, negative=True, required=False) or preset.negative
    if seed is None:
        seed = random_seed()
    elif not 0 <= seed < SEED_LIMIT:
        raise UserInputError("input.seed_range", max=SEED_LIMIT - 1)
    steps = preset.steps if steps is None else steps
    if not preset.min_steps <= steps <= preset.max_steps:
        raise UserInputError("input.steps_range", min=preset.min_steps, max=preset.max_steps)
    if not preset.family.uses_guidance or guidance is None:
        guidance = preset.guidance
    elif not preset.min_guidance <= guidance <= preset.max_guidance:
        raise UserInputError("input.guidance_range", min=preset.min_guidance, max=preset.max_guidance)
    try:
        chosen = preset.size(size)
    except KeyError:
        names = ", ".join(s.name for s in preset.sizes)
        raise UserInputError("input.unknown_size", size=size, model=preset.name, names=names) from None
    return JobRequest(
        kind=JobKind.IMAGINE,
        prompt=prompt,
        negative=negative_text,
        seed=seed,
        steps=steps,
        guidance=float(guidance),
        width=chosen.width,
        height=chosen.height,
        model=preset.name,
        model_id=preset.id,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
        parent_job=parent_job,
    )


def model_notes(
    preset: ModelPreset, request: JobRequest, *, negative: str | None, guidance: float | None
) -> list[Text]:
    """What the member should know that the model did not use of what they gave (a note each, privately)."""
    notes = []
    family = preset.family
    if negative and negative.strip() and not family.negative_used(request.guidance):
        if family.negative is NegativeWay.NONE or not family.uses_guidance:
            notes.append(Text("note.negative_unsupported", model=preset.label))
        else:
            threshold = 1.0 if family.guidance_kind is Guidance.TRUE_CFG else family.cfg_above
            notes.append(
                Text("note.negative_low_guidance", model=preset.label, threshold=threshold, guidance=request.guidance)
            )
    if guidance is not None and not family.uses_guidance:
        notes.append(Text("note.guidance_unused", model=preset.label))
    return notes


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
