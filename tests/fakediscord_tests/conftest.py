"""Fixtures for the fake Discord's self-tests: a started fake and a real discord.py bot connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakediscord import FakeDiscord, Member
from tests.fakediscord.discordpy import running
from tests.fakediscord_tests.probe_bot import ProbeBot


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as instance:
        yield instance


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[ProbeBot]:
    """A ProbeBot logged in, commands synced, gateway ready; Route.BASE/DEFAULT_GATEWAY restored afterwards."""
    async with running(ProbeBot(), fake) as client:
        yield client


@pytest.fixture
def alice(fake: FakeDiscord) -> Member:
    return fake.add_member("alice")
