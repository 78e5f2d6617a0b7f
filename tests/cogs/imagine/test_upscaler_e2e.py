"""U2 with a dedicated upscaler (``[upscale] model``) through the fake Discord: one image at the upscaler's ×4,
whose recipe names the upscaler, and whose bytes the command line draws again (``seedgrid reproduce``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import build_parser, request_from_file
from bot.config import Settings
from bot.engine import Engine
from bot.imaging.recipe import read_recipe
from tests.cogs.conftest import BotFactory, bot_settings, buttons
from tests.cogs.imagine.test_cog import image, imagine
from tests.cogs.imagine.test_upscale_e2e import ROOT, press, reply_with, same_pixels
from tests.conftest import config_text
from tests.fakediscord import FakeDiscord


def upscale_section(upscaler: Path) -> str:
    return f'[upscale]\nmodel = "{upscaler}"\nsteps = 2\nmax_side = 512\n'


@pytest.fixture
async def upscaler_engine(
    fake: FakeDiscord, tiny_model: Path, tiny_upscaler: Path, tmp_path: Path
) -> AsyncIterator[tuple[Engine, Settings]]:
    settings = bot_settings(fake, tiny_model, tmp_path / "upscaler.db", extra=upscale_section(tiny_upscaler))
    engine = await Engine.open(settings)
    yield engine, settings
    await engine.close()


async def cli(tmp_path: Path, tiny_model: Path, tiny_upscaler: Path, *args: str) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(config_text(tiny_model, tmp_path / "cli.db", extra=upscale_section(tiny_upscaler)))
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


async def test_u2_with_an_upscaler_posts_4x_the_tile_that_the_cli_reproduces(
    fake: FakeDiscord,
    make_bot: BotFactory,
    upscaler_engine: tuple[Engine, Settings],
    tiny_model: Path,
    tiny_upscaler: Path,
    tmp_path: Path,
) -> None:
    engine, settings = upscaler_engine
    async with make_bot(upscale_section(tiny_upscaler), engine_=engine):
        grid = await imagine(fake, prompt="a lighthouse at dusk", seed=7, steps=2, size="small")
        await press(fake, grid, "U2")
        upscale = await fake.wait_for_message(reply_with(grid, "Refine"), timeout=120)
        assert [b["label"] for b in buttons(upscale)] == ["Vary (subtle)", "Vary (strong)", "Refine"]
        posted, picture = image(fake, upscale)
    assert picture.size == (256, 256)  # the upscaler's ×4 of a 64² tile, not [upscale] factor's ×2
    recipe = read_recipe(posted)
    assert recipe is not None and recipe.kind == "upscale" and recipe.upscaler == str(tiny_upscaler)
    assert recipe.source is not None and recipe.source.tiles[0].seed == 8 and recipe.steps == 2

    # the command line: `reproduce` of the posted PNG gives its bytes; `upscale` of the grid its pixels
    (tmp_path / "upscale.png").write_bytes(posted)
    await cli(
        tmp_path, tiny_model, tiny_upscaler, "reproduce", str(tmp_path / "upscale.png"), "--out", str(tmp_path / "a")
    )
    assert (tmp_path / "a" / "upscale.png").read_bytes() == posted
    # `seedgrid upscale grid.png --tile 2` builds its job with the command line's own code (in process here:
    # the subprocess above already proved the command line draws the same bytes as the bot)
    grid_png, _ = image(fake, grid)
    (tmp_path / "grid.png").write_bytes(grid_png)
    argv = ["upscale", str(tmp_path / "grid.png"), "--tile", "2", "--out", "b", "--config", "unused.toml"]
    args = build_parser().parse_args(argv)
    request = request_from_file(settings, args, engine.models)
    again = await (await engine.submit(request)).result()
    assert same_pixels(again.grid_png, posted)
