"""Buttons on a message from before a restart still work (the numbers and the U row): a real ``python -m bot run``
process takes over."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine import Engine
from cogs.client import SeedgridBot
from tests.cogs.conftest import bot_settings, buttons, forget_earlier_worlds, has_grid, replying_to
from tests.cogs.imagine.test_cog import image
from tests.cogs.imagine.test_upscale_e2e import press, reply_with
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord
from tests.fakediscord.discordpy import running

ROOT = Path(__file__).parents[2]
IDENTIFY = 2


@pytest.fixture
async def bot_process(
    fake: FakeDiscord, tiny_model: Path, settings: Settings, engine: Engine, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot run`` on the same database as the session's engine."""
    await forget_earlier_worlds(engine)
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(
            tiny_model,
            settings.storage.database,
            api_base_url=fake.api_base_url,
            gateway_url=fake.gateway_url,
        )
    )
    log = tmp_path / "bot.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config),
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
            env={**os.environ, "DISCORD_TOKEN": TEST_TOKEN},
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
    output = log.read_text()
    assert TEST_TOKEN not in output
    assert "Traceback" not in output, output


async def test_buttons_work_after_the_bot_restarts(
    fake: FakeDiscord, engine: Engine, tiny_model: Path, tmp_path: Path, bot_process: asyncio.subprocess.Process
) -> None:
    # 1. the first bot (in this process) posts a grid, then goes away
    first = SeedgridBot(bot_settings(fake, tiny_model, tmp_path / "unused.db"), engine=engine)
    async with running(first, fake):
        ix = await fake.slash(fake.member, "imagine", prompt="an old castle", seed=500, steps=2, size="small")
        await ix.wait_response()
        parent = await ix.wait_original(has_grid, timeout=60)
    await engine.drain()

    # 2. a new bot process connects (fresh memory, same database) ...
    await fake.wait_for_gateway_op(IDENTIFY, count=2, timeout=120)
    await fake.wait_until_ready(timeout=60)

    # 3. ... and the old message's buttons still open the modal and refine
    click = await fake.click(fake.member, parent, buttons(parent)[3]["custom_id"])  # type: ignore[arg-type]
    await click.wait_response()
    assert click.modal is not None
    assert click.modal["title"] == "Refine tile 4 · seed 503"
    field = click.modal["components"][0]["components"][0]
    submit = await fake.submit_modal(fake.member, click, {field["custom_id"]: ", in winter"})
    await submit.wait_response()
    reply = await fake.wait_for_message(replying_to(parent["id"]), timeout=120)  # type: ignore[arg-type]
    assert [b["label"] for b in buttons(reply)] == ["1", "U1"]
    assert reply["embeds"][0]["description"] == "**Prompt:** an old castle\n**1** · , in winter"  # type: ignore[index]

    # 4. ... and so does its second row: U2 posts that tile alone, enlarged, with Vary and Refine
    await press(fake, parent, "U2")
    upscale = await fake.wait_for_message(reply_with(parent, "Refine"), timeout=120)
    assert [b["label"] for b in buttons(upscale)] == ["Vary (subtle)", "Vary (strong)", "Refine"]
    assert image(fake, upscale)[1].size == (128, 128)  # the 64² tile at [upscale] factor 2
