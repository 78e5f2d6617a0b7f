"""End-to-end fixtures: a fresh fake Discord per test and the real bot connected to it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.config import Settings, parse_settings
from bot.engine import Engine
from cogs.client import SeedgridBot
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord
from tests.fakediscord.discordpy import running

JSON = dict[str, object]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=TEST_TOKEN) as instance:
        yield instance
        assert instance.violations == [], "the bot sent requests Discord's OpenAPI spec rejects"
        assert instance.protocol_errors == [], "the bot broke a Discord rule"


def bot_settings(fake: FakeDiscord, tiny_model: Path, database: Path, extra: str = "") -> Settings:
    return parse_settings(
        config_text(tiny_model, database, api_base_url=fake.api_base_url, gateway_url=fake.gateway_url, extra=extra)
    )


async def forget_earlier_worlds(engine: Engine) -> None:
    """Each test has a new fake Discord: jobs left undelivered by an earlier test belong to channels
    that no longer exist, so the shared engine must not try to deliver them to this one."""
    for job in await engine.undelivered():
        await engine.delivered(job.id, None)


@pytest.fixture
async def bot(fake: FakeDiscord, engine: Engine, tiny_model: Path, tmp_path: Path) -> AsyncIterator[SeedgridBot]:
    """The real bot (shared loaded tiny model), logged in and with its commands registered."""
    await forget_earlier_worlds(engine)
    client = SeedgridBot(bot_settings(fake, tiny_model, tmp_path / "unused.db"), engine=engine)
    async with running(client, fake):
        yield client
    await engine.drain()


BotFactory = Callable[..., contextlib.AbstractAsyncContextManager[SeedgridBot]]


@pytest.fixture
def make_bot(fake: FakeDiscord, engine: Engine, tiny_model: Path, tmp_path: Path) -> BotFactory:
    """``async with make_bot(extra_toml) as bot``: the real bot with extra config sections (shared engine)."""

    @contextlib.asynccontextmanager
    async def make(extra: str = "", *, engine_: Engine | None = None) -> AsyncIterator[SeedgridBot]:
        settings = bot_settings(fake, tiny_model, tmp_path / "unused.db", extra=extra)
        await forget_earlier_worlds(engine_ or engine)
        client = SeedgridBot(settings, engine=engine_ or engine)
        async with running(client, fake):
            yield client
        await (engine_ or engine).drain()

    return make


def buttons(message: JSON) -> list[JSON]:
    return [c for row in message["components"] for c in row["components"]]  # type: ignore[attr-defined]


def has_grid(message: JSON) -> bool:
    """The finished grid: an image, its embed and the numbered buttons (not a progress preview)."""
    return bool(message["attachments"] and message["embeds"]) and any(b.get("label") == "1" for b in buttons(message))


def replying_to(parent_id: str) -> Callable[[JSON], bool]:
    def check(message: JSON) -> bool:
        reference = message.get("message_reference") or {}
        return reference.get("message_id") == parent_id and has_grid(message)  # type: ignore[union-attr]

    return check
