"""The safety checker path end to end: a tiny random checker, forced to flag everything, and the channel
policies (``bot/imaging/flagged.py``) as members see them, in-process and on a Redis worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

from bot.config import parse_settings
from bot.diffusion.renderer import PipelineRenderer
from bot.engine import Engine, LocalBackend
from bot.remote.connection import connect
from bot.remote.worker import Worker
from tests.cogs.conftest import JSON, BotFactory, has_grid
from tests.conftest import config_text, redis_extra
from tests.fakediscord import FakeDiscord
from tests.redis_server import RedisServer
from tests.tiny_model import build_tiny_pipeline


@pytest.fixture(scope="module")
def flagging_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose safety checker flags every image (every concept threshold below any cosine)."""
    folder = build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd-flagging") / "model", safety_checker=True)
    checker = StableDiffusionSafetyChecker.from_pretrained(folder / "safety_checker")
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0)
    checker.save_pretrained(folder / "safety_checker")
    return folder


@pytest.fixture
async def flagging_engine(flagging_model: Path, tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await Engine.open(parse_settings(config_text(flagging_model, tmp_path / "flag.db")))
    assert engine.info is not None and engine.info.safety_checker
    yield engine
    await engine.close(grace=0)


def field(message: JSON, name: str) -> str | None:
    return next((f["value"] for f in message["embeds"][0]["fields"] if f["name"] == name), None)  # type: ignore[index]


async def grid_in(fake: FakeDiscord, channel: object, seed: int) -> JSON:
    ix = await fake.slash(fake.member, "imagine", prompt="a flagged scene", seed=seed, steps=4, size="small",
                          channel=channel)  # fmt: skip
    return await ix.wait_original(has_grid, timeout=60)


async def test_flagged_tiles_are_blurred_outside_nsfw_channels(
    fake: FakeDiscord, make_bot: BotFactory, flagging_engine: Engine
) -> None:
    async with make_bot(engine_=flagging_engine):
        safe = await grid_in(fake, fake.channel, seed=3)
        allowed = await grid_in(fake, fake.nsfw_channel, seed=3)
    assert field(safe, "Safety") == "⚠️ The safety checker flagged tile(s) 1, 2, 3, 4: hidden."
    assert field(allowed, "Safety") is None  # NSFW channel, nsfw_channels = "allow"
    blurred = fake.attachment_bytes(safe["id"], safe["attachments"][0]["filename"])  # type: ignore[index,arg-type]
    original = fake.attachment_bytes(allowed["id"], allowed["attachments"][0]["filename"])  # type: ignore[index,arg-type]
    assert blurred != original
    # no previews where tiles may be hidden: a preview is never checked
    history = fake.message_history(safe["id"])  # type: ignore[arg-type]
    assert not any(a["filename"].startswith("preview") for m in history for a in m["attachments"])


async def test_spoiler_policy_sends_the_grid_as_a_spoiler(
    fake: FakeDiscord, make_bot: BotFactory, flagging_engine: Engine
) -> None:
    async with make_bot('[safety]\nflagged = "spoiler"\n', engine_=flagging_engine):
        message = await grid_in(fake, fake.channel, seed=5)
    assert message["attachments"][0]["filename"].startswith("SPOILER_")  # type: ignore[index]
    assert "spoiler" in (field(message, "Safety") or "")
    assert "image" not in message["embeds"][0]  # type: ignore[index]


async def test_the_policy_holds_when_the_checker_runs_on_a_redis_worker(
    fake: FakeDiscord, make_bot: BotFactory, flagging_model: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    """The bot (no model) learns from the workers that a checker runs; the worker sends the tiles to blur."""
    text = config_text(flagging_model, tmp_path / "r.db", extra=redis_extra(redis_server.url, redis_server.prefix()))
    settings = parse_settings(text)
    local = LocalBackend(
        {"cpu": partial(PipelineRenderer.load, settings.model, safety_checker=True)}, settings.executor
    )
    await local.start()
    client = await connect(settings.redis)
    worker = Worker(local, client, settings.redis, name="flagging-worker")
    running_worker = asyncio.create_task(worker.run())
    engine = await Engine.open(settings)
    try:
        await engine.wait_for_workers(120)
        assert engine.info is not None and engine.info.safety_checker
        async with make_bot(engine_=engine):
            safe = await grid_in(fake, fake.channel, seed=3)
        assert field(safe, "Safety") == "⚠️ The safety checker flagged tile(s) 1, 2, 3, 4: hidden."
    finally:
        await engine.close(grace=0)
        worker.stop()
        await running_worker
        await client.aclose()
        await local.close(grace=0)
