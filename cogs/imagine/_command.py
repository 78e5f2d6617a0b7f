"""The /imagine command object, built at start-up because its size choices and bounds come from the config.

No ``from __future__ import annotations`` here on purpose: discord.py reads the parameter annotations
to build the command's options, and the ``Range`` bounds are local values that only exist in this
function's scope, so the annotations must be evaluated where they are written.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands

from bot.config import GenerationSettings
from bot.inputs import MAX_PROMPT_LENGTH
from bot.jobs import SEED_LIMIT
from bot.texts import text

ImagineCallback = Callable[
    [discord.Interaction, str, str | None, int | None, int | None, float | None, str | None], Awaitable[None]
]


def imagine_command(
    gen: GenerationSettings, run: ImagineCallback, *, direct_messages: bool = False
) -> app_commands.Command[Any, ..., None]:
    sizes = [app_commands.Choice(name=s.label, value=s.name) for s in gen.sizes]
    prompt_type = app_commands.Range[str, 1, MAX_PROMPT_LENGTH]
    seed_type = app_commands.Range[int, 0, SEED_LIMIT - 1]
    steps_type = app_commands.Range[int, gen.min_steps, gen.max_steps]
    guidance_type = app_commands.Range[float, gen.min_guidance, gen.max_guidance]

    @app_commands.command(name="imagine", description=text("imagine.description"))
    @app_commands.describe(
        prompt=text("imagine.prompt"),
        negative=text("imagine.negative"),
        seed=text("imagine.seed", max=SEED_LIMIT - 1),
        steps=text("imagine.steps", min=gen.min_steps, max=gen.max_steps, default=gen.default_steps),
        guidance=text("imagine.guidance", min=gen.min_guidance, max=gen.max_guidance, default=gen.default_guidance),
        size=text("imagine.size", default=gen.sizes[0].label),
    )
    @app_commands.choices(size=sizes)
    @app_commands.allowed_contexts(guilds=True, dms=direct_messages, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def imagine(
        interaction: discord.Interaction,
        prompt: prompt_type,
        negative: prompt_type | None = None,
        seed: seed_type | None = None,
        steps: steps_type | None = None,
        guidance: guidance_type | None = None,
        size: app_commands.Choice[str] | None = None,
    ) -> None:
        await run(interaction, prompt, negative, seed, steps, guidance, size.value if size else None)

    return imagine
