"""Delivery under Discord's faults (cogs/imagine/_delivery.py): passing 5xx are retried with backoff until
the grid is posted once; a definitive refusal fails the job aloud, in the store and the admin's log."""

from __future__ import annotations

import logging
import time

import pytest

from bot.config import Settings
from bot.engine import Engine
from bot.jobs import JobStatus
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, BotFactory, buttons, has_grid, replying_to
from tests.fakediscord import FakeDiscord, RequestDetail
from tests.polling import until

CHANNEL_EDIT = r"^/channels/\d+/messages/\d+$"


def carries_the_grid(detail: RequestDetail) -> bool:
    """The request that posts a finished grid (its image is named ``seedgrid-<job>.<ext>``)."""
    return any(filename.startswith("seedgrid-") for _, filename, _ in detail.files)


async def grid(fake: FakeDiscord, prompt: str) -> JSON:
    ix = await fake.slash(fake.member, "imagine", prompt=prompt, seed=5, steps=1, size="small")
    await ix.wait_response()
    return await ix.wait_original(has_grid, timeout=60)


async def reroll(fake: FakeDiscord, parent: JSON) -> None:
    reroll_button = next(b for b in buttons(parent) if b.get("label") == "Re-roll")
    click = await fake.click(fake.member, parent, reroll_button["custom_id"])  # type: ignore[arg-type]
    await click.wait_response()


def job_of(message: JSON) -> int:
    return int(message["embeds"][0]["footer"]["text"].split()[1])


async def test_three_503s_on_the_channel_edit_then_the_grid_is_posted_once(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    parent = await grid(fake, "a windmill")
    # a re-roll's grid is an edit of the bot's own reply, with the bot token: discord.py does not retry a 503
    failing = fake.inject("PATCH", CHANNEL_EDIT, status=503, count=3, when=carries_the_grid)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cogs.imagine._delivery"):
        await reroll(fake, parent)
        child = await fake.wait_for_message(replying_to(parent["id"]), timeout=60)  # type: ignore[arg-type]
        await engine.drain()
    took = time.monotonic() - started
    assert failing.hits == 3
    retries = [r.getMessage() for r in caplog.records if "delivery attempt" in r.getMessage()]
    assert [m.split("delivery attempt ")[1][:1] for m in retries] == ["1", "2", "3"], retries
    assert took < 30, took  # backoff 0.5 + 1 + 2 s (± half), plus the job itself
    # posted once, and recorded with the message it is in
    grids = [m for m in fake.all_messages() if has_grid(m) and m.get("message_reference")]
    assert [m["id"] for m in grids if job_of(m) == job_of(child)] == [child["id"]]
    assert (await store_probe.delivered_jobs(settings.storage.database))[job_of(child)] == int(child["id"])
    # while it retried, the message said why it was waiting
    history = fake.message_history(child["id"])  # type: ignore[arg-type]
    assert any("having trouble" in (m.get("content") or "") for m in history), history


async def test_a_permanent_403_fails_the_job_aloud(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_bot():
        parent = await grid(fake, "a lighthouse")
        refused = fake.inject("PATCH", CHANNEL_EDIT, status=403, count=1000, when=carries_the_grid)
        with caplog.at_level(logging.ERROR, logger="cogs.imagine._delivery"):
            await reroll(fake, parent)

            async def failed_job() -> int | None:
                for record in caplog.records:
                    if "cannot be delivered" in record.getMessage():
                        return int(record.getMessage().split()[1])
                return None

            job_id = await until(failed_job, within=60, what="the admin log to say the job cannot be delivered")
            await engine.drain()
        refused.count = 0  # stop refusing
    assert refused.hits == 1  # a 403 is final: no retry
    job = await engine.job(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert not any(has_grid(m) and job_of(m) == job_id for m in fake.all_messages())
    assert job_id not in [j.id for j in await engine.undelivered()]  # never posted again after a restart
