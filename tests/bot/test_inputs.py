"""What a member typed → a valid job request or a clear refusal (``bot/inputs.py``): prompts, seeds, suffixes,
refine and re-roll."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import DEFAULT_MODEL, RefineSettings, Settings
from bot.diffusion.families import SD1
from bot.engine.models import Catalogue
from bot.inputs import (
    UserInputError,
    imagine_request,
    parse_suffixes,
    recipe_from_parameters,
    refine_request,
    request_from_recipe,
    reroll_request,
)
from bot.jobs import SEED_LIMIT, JobKind, Tile, tile_seed

GEN = Catalogue.resolve(Settings(), families={DEFAULT_MODEL: SD1}).default
"""The default model of a default config: SD 1.5's preset (30 steps, guidance 7.5, 512-pixel sizes)."""
REFINE = RefineSettings()


def test_imagine_defaults_and_tiles() -> None:
    request = imagine_request(GEN, prompt="  a   cat\non a mat ", seed=10)
    assert request.prompt == "a cat on a mat"
    assert (request.steps, request.guidance, request.width, request.height) == (30, 7.5, 512, 512)
    assert [t.seed for t in request.tiles()] == [10, 11, 12, 13]
    assert {t.prompt for t in request.tiles()} == {"a cat on a mat"}


def test_seeds_wrap_at_the_limit() -> None:
    request = imagine_request(GEN, prompt="x", seed=SEED_LIMIT - 2)
    assert [t.seed for t in request.tiles()] == [SEED_LIMIT - 2, SEED_LIMIT - 1, 0, 1]
    assert tile_seed(5, 3) == 8


def test_random_seed_is_in_range() -> None:
    for _ in range(50):
        request = imagine_request(GEN, prompt="x")
        assert 0 <= request.seed <= SEED_LIMIT - 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "   "}, "empty"),
        ({"prompt": "x" * 1001}, "1001 characters"),
        ({"prompt": "x", "seed": -1}, "seed"),
        ({"prompt": "x", "seed": SEED_LIMIT}, "seed"),
        ({"prompt": "x", "steps": 0}, "Steps"),
        ({"prompt": "x", "steps": 51}, "Steps"),
        ({"prompt": "x", "guidance": 20.5}, "Guidance"),
        ({"prompt": "x", "size": "huge"}, "Unknown size"),
    ],
)
def test_imagine_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        imagine_request(GEN, **kwargs)  # type: ignore[arg-type]


def test_suffixes_one_per_line() -> None:
    assert parse_suffixes(", artsy\n\n  watercolor  \n", REFINE) == (", artsy", " watercolor")
    with pytest.raises(UserInputError, match="at least one"):
        parse_suffixes(" \n\t\n", REFINE)
    with pytest.raises(UserInputError, match="At most 4"):
        parse_suffixes("a\nb\nc\nd\ne", REFINE)
    with pytest.raises(UserInputError, match="Line 2"):
        parse_suffixes("a\n" + "b" * 201, REFINE)


@given(st.text(max_size=400))
def test_parse_suffixes_never_crashes(text: str) -> None:
    try:
        suffixes = parse_suffixes(text, REFINE)
    except UserInputError:
        return
    assert 1 <= len(suffixes) <= 4
    assert all(s.strip() and "\n" not in s for s in suffixes)


def test_refine_reuses_the_tile_seed_and_prompt() -> None:
    parent = imagine_request(GEN, prompt="a cat", seed=100)
    request = refine_request(parent, parent_job=7, tile_index=3, tile=Tile("a cat", 102), suffixes=(", artsy", " neon"))
    assert request.kind is JobKind.REFINE
    assert request.tiles() == (Tile("a cat, artsy", 102), Tile("a cat neon", 102))
    assert (request.parent_job, request.parent_tile) == (7, 3)


def test_reroll_keeps_everything_but_the_seed() -> None:
    parent = imagine_request(GEN, prompt="a cat", seed=100, steps=12, guidance=3, size="portrait", guild_id=1)
    request = reroll_request(parent, parent_job=1, user_id=9)
    assert (request.prompt, request.steps, request.guidance, request.width, request.height) == (
        "a cat",
        12,
        3.0,
        512,
        768,
    )
    assert request.guild_id == 1 and request.user_id == 9 and request.parent_job == 1


# --- a recipe read from a PNG, run again (seedgrid reproduce) ---


def test_a_recipe_becomes_the_job_that_draws_it_again() -> None:
    from bot.imaging.recipe import Recipe

    models = Catalogue.resolve(Settings(), families={DEFAULT_MODEL: SD1})
    request = imagine_request(models.default, prompt="a fox, at dawn", negative="blurry", seed=9, steps=20)
    grid = Recipe.of(request, family="sd1", scheduler="PNDMScheduler")
    again = request_from_recipe(grid, models, max_side=2048)
    assert again.tiles() == request.tiles() and again.params() == request.params()
    assert again.kind is JobKind.IMAGINE and (again.model, again.model_id) == (request.model, request.model_id)
    # one tile: an imagine job from its seed; tiles on one seed: a refine job, prompt for prompt
    assert request_from_recipe(grid.tile(3), models, max_side=2048).seed == 11
    refined = Recipe.of(
        refine_request(request, parent_job=1, tile_index=2, tile=Tile("a fox", 10), suffixes=(", red", ", blue")),
        family="sd1",
        scheduler="",
    )
    again = request_from_recipe(refined, models, max_side=2048)
    assert again.kind is JobKind.REFINE and again.tiles() == (Tile("a fox, red", 10), Tile("a fox, blue", 10))
    # refused, with the reason: a model not configured here (named), steps or size out of bounds
    with pytest.raises(UserInputError, match="made with the model sdxl-turbo, which is not configured"):
        request_from_recipe(dataclasses.replace(grid, model="sdxl-turbo"), models, max_side=2048)
    with pytest.raises(UserInputError, match="larger than 256 pixels"):
        request_from_recipe(grid, models, max_side=256)


def test_an_a1111_parameters_text_becomes_a_one_tile_recipe() -> None:
    from bot.imaging.recipe import parse_parameters

    models = Catalogue.resolve(Settings(), families={DEFAULT_MODEL: SD1})
    parameters = parse_parameters(
        "a castle, <@123> @everyone\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, CFG scale: 6, Seed: 77, "
        "Size: 512x768, Model: anything-v5"
    )
    recipe = recipe_from_parameters(parameters, models.default)
    assert recipe.tiles == (Tile("a castle, <@123> @everyone", 77),) and recipe.negative == "fog"
    assert (recipe.steps, recipe.guidance, recipe.width, recipe.height) == (12, 6.0, 512, 768)
    assert recipe.model == models.default.name  # drawn on the default model, whatever A1111 called its checkpoint
    odd = parse_parameters("x\nSteps: 12, Seed: 1, Size: 500x500")
    with pytest.raises(UserInputError, match="not a multiple of 8"):
        recipe_from_parameters(odd, models.default)
