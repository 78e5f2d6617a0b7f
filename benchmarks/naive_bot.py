"""The anti-pattern, on purpose: a minimal discord.py bot that runs diffusers inside its slash command.

This is what many Discord image bots do, and what seedgrid's design exists to avoid (see
``README.md``, "How it works"): the pipeline is called directly in the ``async def``
handler, so the event loop (gateway heartbeats, every other interaction) stands still for
the whole generation, and the handler only defers *after* it, by which time Discord's 3 s
for the first response have usually passed. The benchmarks run it next to seedgrid under
the same load to show what the engine (jobs off the event loop, ``bot/engine/``) buys.

It takes the same config file as seedgrid (only ``[model] id`` and the ``[discord]`` URLs are
read) and offers ``/imagine prompt seed steps size`` with the config's size names, so the
fake Discord can drive both bots with the same interactions.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import discord
import yarl
from discord import app_commands

from bot.config import Settings

log = logging.getLogger(__name__)


class NaiveBot(discord.Client):
    def __init__(self, settings: Settings) -> None:
        discord.http.Route.BASE = settings.discord.api_base_url.rstrip("/")
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)
        super().__init__(intents=discord.Intents(guilds=True))
        self.model = settings.model.id
        self.sides = {size.name: (size.width, size.height) for size in settings.generation.sizes}
        self.pipe: Any = None
        self.generations: list[tuple[float, float]] = []
        """``(start, end)`` wall-clock times of every pipeline call, for the benchmark's windows."""
        self.tree = app_commands.CommandTree(self)
        choices = [app_commands.Choice(name=name, value=name) for name in self.sides]

        @self.tree.command(name="imagine", description="Draw four images (blocking the event loop)")
        @app_commands.choices(size=choices)
        async def imagine(
            interaction: discord.Interaction, prompt: str, seed: int = 0, steps: int = 2, size: str | None = None
        ) -> None:
            await self.imagine(interaction, prompt, seed, steps, size)

    async def setup_hook(self) -> None:
        from diffusers import StableDiffusionPipeline

        self.pipe = StableDiffusionPipeline.from_pretrained(self.model)  # on the event loop, as such bots do
        self.pipe.set_progress_bar_config(disable=True)
        await self.tree.sync()

    async def imagine(
        self, interaction: discord.Interaction, prompt: str, seed: int, steps: int, size: str | None
    ) -> None:
        import torch
        from diffusers.utils import make_image_grid

        width, height = self.sides[size] if size else next(iter(self.sides.values()))
        started = time.time()
        images = self.pipe(  # the anti-pattern: torch on the event loop
            prompt,
            num_images_per_prompt=4,
            generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(4)],
            num_inference_steps=steps,
            guidance_scale=7.5,
            width=width,
            height=height,
        ).images
        self.generations.append((started, time.time()))
        await interaction.response.defer(thinking=True)  # after > 3 s Discord has given up: 10062 Unknown interaction
        buffer = io.BytesIO()
        make_image_grid(images, rows=2, cols=2).save(buffer, format="PNG")
        buffer.seek(0)
        await interaction.followup.send(file=discord.File(buffer, filename="grid.png"))
