"""U1-U4 and Vary through the fake Discord, down to the posted bytes: a grid's second row, an upscale replying
to the grid with Vary (subtle), Vary (strong) and Refine, and variations that are new grids with every button."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bot.engine import Engine
from bot.imaging.recipe import read_recipe
from bot.inputs import upscale_request, vary_request
from bot.jobs import JobKind
from cogs.client import SeedgridBot
from tests.cogs.conftest import JSON, buttons
from tests.cogs.imagine.test_cog import DEFERRED_UPDATE_MESSAGE, MODAL, embed_field, image, imagine
from tests.conftest import config_text
from tests.fakediscord import FakeDiscord
from tests.presets import preset_of


def reply_with(parent: JSON, label: str) -> Callable[[JSON], bool]:
    """A finished reply to ``parent``: an image, its embed, and a button labelled ``label``."""

    def check(message: JSON) -> bool:
        reference: Any = message.get("message_reference") or {}
        return (
            reference.get("message_id") == parent["id"]
            and bool(message["attachments"] and message["embeds"])
            and any(b.get("label") == label for b in buttons(message))
        )

    return check


def button(message: JSON, label: str) -> str:
    return str(next(b for b in buttons(message) if b["label"] == label)["custom_id"])


async def press(fake: FakeDiscord, message: JSON, label: str) -> float:
    click = await fake.click(fake.member, message, button(message, label))
    assert (await click.wait_response()).type == DEFERRED_UPDATE_MESSAGE
    assert click.ack_latency is not None
    return click.ack_latency


ROOT = Path(__file__).parents[3]


async def cli(bot: SeedgridBot, tmp_path: Path, *args: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(Path(bot.settings.model.id), tmp_path / "cli.db"))
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def same_pixels(a: bytes, b: bytes) -> bool:
    return Image.open(io.BytesIO(a)).tobytes() == Image.open(io.BytesIO(b)).tobytes()


async def test_upscale_then_vary_subtle_and_strong(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, tmp_path: Path
) -> None:
    grid = await imagine(fake, prompt="a lighthouse at dusk", seed=7, steps=2, size="small")
    grid_job = int(grid["embeds"][0]["footer"]["text"].split()[1])  # type: ignore[index]
    assert [b["label"] for b in grid["components"][1]["components"]] == ["U1", "U2", "U3", "U4"]  # type: ignore[index]

    # U2: acknowledged at once; the tile alone at twice its size, replying to the grid
    assert await press(fake, grid, "U2") < 3.0
    upscale = await fake.wait_for_message(reply_with(grid, "Refine"), timeout=120)
    assert [b["label"] for b in buttons(upscale)] == ["Vary (subtle)", "Vary (strong)", "Refine"]
    assert upscale["embeds"][0]["title"] == f"Tile 2 of job {grid_job}, upscaled to 128×128"
    assert embed_field(upscale, "Seed") == "8" and embed_field(upscale, "Strength") == "0.35"
    assert embed_field(upscale, "Size") == "128×128"
    posted, picture = image(fake, upscale)
    assert picture.size == (128, 128)
    recipe = read_recipe(posted)
    assert recipe is not None and recipe.kind == "upscale" and recipe.source is not None
    assert recipe.source.tiles[0].seed == 8 and recipe.parent_tile == 2
    assert (await engine.recipe_of_message(int(upscale["id"])))[1] == recipe  # type: ignore[index]

    # the same upscale straight through the engine: the same bytes
    parent = await engine.job(grid_job)
    assert parent is not None
    source = await engine.tile_recipe(parent, 2)
    assert source is not None
    request = upscale_request(
        parent.request,
        source,
        preset=preset_of(bot.settings),
        settings=bot.settings.upscale,
        parent_job=grid_job,
        tile_index=2,
        user_id=parent.request.user_id,
        guild_id=parent.request.guild_id,
        channel_id=parent.request.channel_id,
    )
    assert (await (await engine.submit(request)).result()).grid_png == posted

    # the command line, from the grid's own PNG: the same upscale's pixels (its recipe names no parent job), and
    # `reproduce` gives the grid again, byte for byte
    grid_png, _ = image(fake, grid)
    (tmp_path / "grid.png").write_bytes(grid_png)
    await cli(bot, tmp_path, "upscale", str(tmp_path / "grid.png"), "--tile", "2", "--out", str(tmp_path / "up"))
    assert same_pixels((tmp_path / "up" / "upscale.png").read_bytes(), posted)
    await cli(bot, tmp_path, "reproduce", str(tmp_path / "grid.png"), "--out", str(tmp_path / "again"))
    assert (tmp_path / "again" / "grid.png").read_bytes() == grid_png

    # Vary (subtle) and Vary (strong): new grids of four 128² tiles, with all the usual buttons
    varied: dict[str, bytes] = {}
    seen: set[object] = set()
    for label in ("Vary (subtle)", "Vary (strong)"):
        await press(fake, upscale, label)
        reply = await fake.wait_for_message(lambda m: reply_with(upscale, "U4")(m) and m["id"] not in seen, timeout=120)
        seen.add(reply["id"])
        assert [b["label"] for b in buttons(reply)] == ["1", "2", "3", "4", "U1", "U2", "U3", "U4"]
        data, grid_image = image(fake, reply)
        assert grid_image.size == (256, 256)
        strength = 0.4 if "subtle" in label else 0.75
        assert embed_field(reply, "Strength") == f"{strength:g}"
        seeds = [int(s) for s in re.findall(r"\*\*\d\*\* (\d+)", embed_field(reply, "Seeds"))]
        assert len(seeds) == 4
        # reproducible: the same variation through the engine gives the same bytes
        job = await engine.job(int(reply["embeds"][0]["footer"]["text"].split()[1]))
        assert job is not None and job.request.kind is JobKind.VARY and job.request.seed == seeds[0]
        upscale_job = await engine.job(job.request.parent_job or 0)
        assert upscale_job is not None
        again = vary_request(
            upscale_job.request,
            read_recipe(posted) or recipe,
            preset=preset_of(bot.settings),
            strength=strength,
            parent_job=upscale_job.id,
            tile_index=1,
            seed=seeds[0],
            user_id=job.request.user_id,
            guild_id=job.request.guild_id,
            channel_id=job.request.channel_id,
        )
        assert (await (await engine.submit(again)).result()).grid_png == data
        varied[label.split()[1][1:-1]] = data
    subtle, strong = (np.asarray(Image.open(io.BytesIO(varied[k])), dtype=np.int16) for k in ("subtle", "strong"))
    assert subtle.tobytes() != strong.tobytes()

    # Refine on the upscale: the suffix form, on this tile's seed
    click = await fake.click(fake.member, upscale, button(upscale, "Refine"))
    assert (await click.wait_response()).type == MODAL
    assert click.modal is not None and click.modal["title"] == "Refine tile 1 · seed 8"
