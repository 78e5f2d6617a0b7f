"""Turning what a member typed into a valid :class:`JobRequest`, or a clear refusal.

Pure functions, no Discord: the slash command, the refine modal and the CLI all call these,
and every refusal is a :class:`UserInputError` carrying a text for the member (:mod:`bot.texts`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import Any, TypedDict

from bot.config import MAX_UPSCALER_GUIDANCE, MAX_UPSCALER_STEPS, RefineSettings, UpscaleSettings
from bot.diffusion.families import Guidance, NegativeWay
from bot.engine.models import Catalogue, ModelPreset, UpscalerPreset
from bot.imaging.recipe import MAX_DEPTH, Parameters, Recipe
from bot.jobs import GRID_TILES, MAX_SUFFIXES, SEED_LIMIT, JobKind, JobRequest, Tile, random_seed, tile_seed
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


def _derived(
    parent: JobRequest,
    kind: JobKind,
    source: Recipe,
    *,
    strength: float,
    preset: ModelPreset,
    parent_job: int | None,
    tile_index: int,
    **changes: Any,
) -> JobRequest:
    """A job drawn from ``source`` (tile ``tile_index`` of job ``parent_job``), on the parent's model (and enlarged
    by the dedicated upscaler when ``changes`` name one)."""
    if not preset.family.image_to_image and not changes.get("upscaler"):
        raise UserInputError("input.no_image_to_image", model=preset.label)
    if source.depth + 1 >= MAX_DEPTH:
        raise UserInputError("input.chain_too_long", depth=source.depth + 1)
    tile = source.tiles[0]
    fields: dict[str, Any] = {
        "kind": kind,
        "prompt": tile.prompt,
        "negative": source.negative,
        "seed": tile.seed,
        "steps": source.steps,
        "guidance": source.guidance,
        "width": source.width,
        "height": source.height,
        "suffixes": (),
        "source": source.to_json(),
        "strength": strength,
        "upscaler": "",
        "noise_level": 0,
        "parent_job": parent_job,
        "parent_tile": tile_index,
    }
    return replace(parent, **(fields | changes))


def upscale_request(
    parent: JobRequest,
    source: Recipe,
    *,
    preset: ModelPreset,
    settings: UpscaleSettings,
    parent_job: int | None,
    tile_index: int,
    user_id: int = 0,
    guild_id: int | None = None,
    channel_id: int | None = None,
    upscaler: UpscalerPreset | None = None,
) -> JobRequest:
    """U1-U4: tile ``tile_index`` alone at ``settings.factor`` × its size (a multiple of the model's size step), its
    own prompt and seed, redrawn from the enlarged tile at ``settings.strength``; refused beyond ``max_side``.

    With a dedicated ``upscaler`` (``[upscale] model``, see :meth:`Catalogue.upscaler`) the tile is enlarged by
    that upscaler instead, at its own factor, steps, guidance and noise level."""
    origin = {"user_id": user_id, "guild_id": guild_id, "channel_id": channel_id}
    if upscaler is not None:
        width, height = source.width * upscaler.factor, source.height * upscaler.factor
        if max(width, height) > settings.max_side:
            raise UserInputError("input.upscale_too_big", width=width, height=height, max=settings.max_side)
        return _derived(
            parent,
            JobKind.UPSCALE,
            source,
            strength=0.0,
            preset=preset,
            parent_job=parent_job,
            tile_index=tile_index,
            width=width,
            height=height,
            steps=upscaler.steps,
            guidance=upscaler.guidance,
            upscaler=upscaler.id,
            noise_level=upscaler.noise_level,
            **origin,
        )
    multiple = preset.family.size_multiple
    width, height = (
        max(multiple, round(side * settings.factor / multiple) * multiple) for side in (source.width, source.height)
    )
    if max(width, height) > settings.max_side:
        raise UserInputError("input.upscale_too_big", width=width, height=height, max=settings.max_side)
    return _derived(
        parent,
        JobKind.UPSCALE,
        source,
        strength=settings.strength,
        preset=preset,
        parent_job=parent_job,
        tile_index=tile_index,
        width=width,
        height=height,
        **origin,
    )


def vary_request(
    parent: JobRequest,
    source: Recipe,
    *,
    preset: ModelPreset,
    strength: float,
    parent_job: int | None,
    tile_index: int,
    seed: int | None = None,
    user_id: int = 0,
    guild_id: int | None = None,
    channel_id: int | None = None,
) -> JobRequest:
    """Vary: four new seeds (``seed ..``, random by default), each drawn from tile ``tile_index`` at ``strength``."""
    return _derived(
        parent,
        JobKind.VARY,
        source,
        strength=strength,
        preset=preset,
        parent_job=parent_job,
        tile_index=tile_index,
        seed=random_seed() if seed is None else seed,
        user_id=user_id,
        guild_id=guild_id,
        channel_id=channel_id,
    )


def request_from_recipe(recipe: Recipe, models: Catalogue, *, max_side: int) -> JobRequest:
    """The job that draws ``recipe``'s images again (``seedgrid reproduce``), on the model it names.

    A grid of four consecutive seeds is an imagine job (the same grid, byte for byte, on the same model); one
    tile is an imagine job from its seed (its tile 1 is that image); other tile sets re-run each prompt on its
    seed as a refine job does. Refused, with the reason, when the model is not configured or the settings are
    out of the model's bounds.
    """
    preset = models.get(recipe.model) if recipe.model else None
    if preset is None:
        raise UserInputError("input.recipe_model", model=recipe.model or recipe.model_id or "?")
    _check_steps_and_guidance(recipe, preset)
    _check_chain(recipe, preset, max_side, models.upscaler)
    if recipe.source is not None and not recipe.upscaler and not preset.family.image_to_image:
        raise UserInputError("input.no_image_to_image", model=preset.label)
    first = recipe.tiles[0]
    kind = JobKind(recipe.kind)
    consecutive = len(recipe.tiles) == 1 or (
        len(recipe.tiles) == GRID_TILES
        and all(t.prompt == first.prompt and t.seed == tile_seed(first.seed, i) for i, t in enumerate(recipe.tiles))
    )
    suffixes: tuple[str, ...] = ()
    prompt = first.prompt
    if kind is JobKind.UPSCALE:
        pass
    elif consecutive:
        kind = JobKind.VARY if kind is JobKind.VARY else JobKind.IMAGINE
    elif all(t.seed == first.seed for t in recipe.tiles) and len(recipe.tiles) <= MAX_SUFFIXES:
        kind, prompt, suffixes = JobKind.REFINE, "", tuple(t.prompt for t in recipe.tiles)
    else:
        raise UserInputError("input.recipe_unusable", reason="its tiles are neither a grid nor one seed refined")
    if recipe.source is None and kind is not JobKind.REFINE and kind is not JobKind.IMAGINE:
        raise UserInputError("input.recipe_unusable", reason=f"a {kind} without its source tile")
    return JobRequest(
        kind=kind,
        prompt=prompt,
        negative=recipe.negative,
        seed=first.seed,
        steps=recipe.steps,
        guidance=recipe.guidance,
        width=recipe.width,
        height=recipe.height,
        suffixes=suffixes,
        model=preset.name,
        model_id=preset.id,
        strength=(recipe.strength or 0.0) if recipe.source is not None else 0.0,
        source=recipe.source.to_json() if recipe.source is not None else "",
        upscaler=recipe.upscaler,
        noise_level=recipe.noise_level or 0,
        parent_job=recipe.parent_job,
        parent_tile=recipe.parent_tile,
    )


def _check_steps_and_guidance(recipe: Recipe, preset: ModelPreset) -> None:
    """The model's bounds; for an upscaler's image, the bounds ``[upscale] steps`` and ``guidance`` accept."""
    if recipe.upscaler:
        if not 1 <= recipe.steps <= MAX_UPSCALER_STEPS:
            raise UserInputError("input.steps_range", min=1, max=MAX_UPSCALER_STEPS)
        if not 0 <= recipe.guidance <= MAX_UPSCALER_GUIDANCE:
            raise UserInputError("input.guidance_range", min=0, max=MAX_UPSCALER_GUIDANCE)
        return
    if not preset.min_steps <= recipe.steps <= preset.max_steps:
        raise UserInputError("input.steps_range", min=preset.min_steps, max=preset.max_steps)
    if preset.family.uses_guidance and not preset.min_guidance <= recipe.guidance <= preset.max_guidance:
        raise UserInputError("input.guidance_range", min=preset.min_guidance, max=preset.max_guidance)


def _check_chain(recipe: Recipe, preset: ModelPreset, max_side: int, upscaler: UpscalerPreset | None) -> None:
    """The image and every source tile behind it: sizes the model can draw, prompts of a length a member could
    have typed (a recipe may come from anyone's file), and upscalers that are configured here."""
    level: Recipe | None = recipe
    multiple = preset.family.size_multiple
    while level is not None:
        if level.upscaler and (upscaler is None or level.upscaler != upscaler.id):
            raise UserInputError("input.recipe_upscaler", upscaler=level.upscaler)
        if max(level.width, level.height) > max_side:
            reason = f"{level.width}×{level.height} is larger than {max_side} pixels a side"
            raise UserInputError("input.recipe_unusable", reason=reason)
        if level.width % multiple or level.height % multiple:
            reason = f"{level.width}×{level.height} is not a multiple of {multiple} for {preset.label}"
            raise UserInputError("input.recipe_unusable", reason=reason)
        longest = max(len(t.prompt) for t in level.tiles)
        if len(level.negative) > MAX_PROMPT_LENGTH or longest > MAX_REFINED_PROMPT_LENGTH:
            raise UserInputError("input.recipe_unusable", reason="a prompt in it is too long")
        level = level.source


def recipe_from_parameters(parameters: Parameters, preset: ModelPreset) -> Recipe:
    """An A1111 ``parameters`` text as a one-tile recipe on ``preset`` (its seed, steps, CFG scale and size where
    given, the preset's otherwise); the Model it names is not looked up (A1111 names checkpoints, not ours)."""
    seed = parameters.get_int("Seed")
    size = parameters.size()
    width, height = size if size is not None else (preset.sizes[0].width, preset.sizes[0].height)
    multiple = preset.family.size_multiple
    if width % multiple or height % multiple or min(width, height) < multiple:
        reason = f"{width}×{height} is not a multiple of {multiple} for {preset.label}"
        raise UserInputError("input.recipe_unusable", reason=reason)
    prompt = clean_prompt(parameters.prompt)
    guidance = parameters.get_float("CFG scale")
    return Recipe(
        kind=JobKind.IMAGINE.value,
        model=preset.name,
        model_id=preset.id,
        family=preset.family.name,
        scheduler="",
        negative=clean_prompt(parameters.negative, negative=True, required=False),
        steps=parameters.get_int("Steps") or preset.steps,
        guidance=guidance if guidance is not None else preset.guidance,
        width=width,
        height=height,
        tiles=(Tile(prompt, seed if seed is not None and 0 <= seed < SEED_LIMIT else random_seed()),),
    )
