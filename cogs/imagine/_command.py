"""The /imagine command object, built at start-up because its choices and bounds come from the config.

No ``from __future__ import annotations`` here on purpose: discord.py reads the parameter annotations
to build the command's options, and the ``Range`` bounds are local values that only exist in this
function's scope, so the annotations must be evaluated where they are written.

The ``model`` option exists only when several models are configured. Steps and guidance are
bounded by the file's limits (``[generation]``); each model's own bounds and defaults are checked
and filled in by :func:`bot.inputs.imagine_request`, since Discord cannot vary them by another option.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.config import GenerationSettings
from bot.engine import Catalogue
from bot.inputs import MAX_PROMPT_LENGTH
from bot.jobs import SEED_LIMIT
from cogs.languages import described

ImagineCallback = Callable[
    [discord.Interaction, str, str | None, int | None, int | None, float | None, str | None, str | None],
    Awaitable[None],
]


def imagine_command(
    gen: GenerationSettings, models: Catalogue, run: ImagineCallback, *, direct_messages: bool = False
) -> app_commands.Command[Any, ..., None]:
    default = models.default
    sizes = [app_commands.Choice(name=s.label, value=s.name) for s in models.size_names]
    prompt_type = app_commands.Range[str, 1, MAX_PROMPT_LENGTH]
    seed_type = app_commands.Range[int, 0, SEED_LIMIT - 1]
    steps_type = app_commands.Range[int, gen.min_steps, gen.max_steps]
    guidance_type = app_commands.Range[float, gen.min_guidance, gen.max_guidance]
    if len(models) == 1:
        steps_text = described("imagine.steps", min=default.min_steps, max=default.max_steps, default=default.steps)
        guidance_text = described(
            "imagine.guidance", min=default.min_guidance, max=default.max_guidance, default=default.guidance
        )
    else:
        steps_text = described("imagine.steps_by_model", min=gen.min_steps, max=gen.max_steps)
        guidance_text = described("imagine.guidance_by_model", min=gen.min_guidance, max=gen.max_guidance)

    descriptions = {
        "prompt": described("imagine.prompt"),
        "negative": described("imagine.negative"),
        "seed": described("imagine.seed", max=SEED_LIMIT - 1),
        "steps": steps_text,
        "guidance": guidance_text,
        "size": described("imagine.size", default=default.sizes[0].label),
    }
    choices: dict[str, list[app_commands.Choice[str]]] = {"size": sizes}
    callback: Callable[..., Awaitable[None]]

    if len(models) > 1:
        descriptions["model"] = described("imagine.model", default=default.name)
        choices["model"] = [app_commands.Choice(name=preset.label[:100], value=preset.name) for preset in models]

        async def pick_model(
            interaction: discord.Interaction,
            prompt: prompt_type,
            negative: prompt_type | None = None,
            seed: seed_type | None = None,
            steps: steps_type | None = None,
            guidance: guidance_type | None = None,
            size: app_commands.Choice[str] | None = None,
            model: app_commands.Choice[str] | None = None,
        ) -> None:
            picked = (size.value if size else None, model.value if model else None)
            await run(interaction, prompt, negative, seed, steps, guidance, *picked)

        callback = pick_model
    else:  # one model: nothing to pick

        async def one_model(
            interaction: discord.Interaction,
            prompt: prompt_type,
            negative: prompt_type | None = None,
            seed: seed_type | None = None,
            steps: steps_type | None = None,
            guidance: guidance_type | None = None,
            size: app_commands.Choice[str] | None = None,
        ) -> None:
            await run(interaction, prompt, negative, seed, steps, guidance, size.value if size else None, None)

        callback = one_model

    callback = app_commands.describe(**descriptions)(app_commands.choices(**choices)(callback))
    callback = app_commands.allowed_contexts(guilds=True, dms=direct_messages, private_channels=False)(callback)
    callback = app_commands.allowed_installs(guilds=True, users=False)(callback)
    return app_commands.command(name="imagine", description=described("imagine.description"))(callback)
