"""The job engine as members see it: fairness, caps, cancel, the 15-minute token, flaky connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import parse_settings
from bot.engine import Engine
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, bot_settings, buttons, has_grid, replying_to
from tests.conftest import config_text
from tests.fakediscord import FakeDiscord, Permissions
from tests.fakediscord.discordpy import running

EPHEMERAL = 64


def grid_messages(fake: FakeDiscord, job_prompt: str) -> list[JSON]:
    return [m for m in fake.all_messages() if has_grid(m) and m["embeds"] and m["embeds"][0].get("title") == job_prompt]


async def status_with_cancel(ix: object) -> JSON:
    return await ix.wait_original(  # type: ignore[attr-defined,no-any-return]
        lambda m: any(b.get("label") == "Cancel" for b in buttons(m)), timeout=30
    )


async def test_fair_queue_light_user_is_served_second(fake: FakeDiscord, bot: SeedgridBot) -> None:
    blocker, heavy, light = fake.add_member("blocker"), fake.add_member("heavy"), fake.add_member("light")
    first = await fake.slash(blocker, "imagine", prompt="blocker", seed=1, steps=30, size="large")
    await status_with_cancel(first)  # the worker is busy: everything below queues behind it
    heavy_ixs = [
        await fake.slash(heavy, "imagine", prompt=f"heavy {i}", seed=i, steps=2, size="small") for i in range(10)
    ]
    light_ix = await fake.slash(light, "imagine", prompt="light 0", seed=99, steps=2, size="small")
    grids = [await ix.wait_original(has_grid, timeout=180) for ix in [first, *heavy_ixs, light_ix]]

    # what the light member saw while waiting: second in line, never further back
    shown = [m["content"] or "" for m in fake.message_history(light_ix.original["id"])]  # type: ignore[index]
    positions = [int(t.split("position ")[1].split(" ")[0]) for t in shown if "position " in t]
    assert positions and max(positions) == 2, shown

    # the order the jobs finished in (recorded by the store)
    jobs = [await bot.engine.job(int(g["embeds"][0]["footer"]["text"].split()[1])) for g in grids]
    names = ["blocker", *(f"heavy{i}" for i in range(10)), "light"]
    order = [name for _, name in sorted(zip([j.finished_at for j in jobs], names, strict=True))]  # type: ignore[union-attr]
    print(f"\ncompletion order: {order}")  # the closing note quotes it
    assert order[:3] == ["blocker", "heavy0", "light"], order  # FIFO would make it 12th


async def test_cancel_queued_and_running_jobs(fake: FakeDiscord, bot: SeedgridBot) -> None:
    author = fake.add_member("author")
    stranger = fake.add_member("stranger")
    moderator = fake.add_member("moderator", permissions=Permissions.MANAGE_MESSAGES)
    running_ix = await fake.slash(author, "imagine", prompt="long job", seed=1, steps=50, size="large")
    queued_ix = await fake.slash(author, "imagine", prompt="queued job", seed=2, steps=2, size="small")
    queued_msg = await status_with_cancel(queued_ix)

    # a queued job leaves the queue at once
    cancel_id = next(b["custom_id"] for b in buttons(queued_msg) if b["label"] == "Cancel")
    click = await fake.click(author, queued_msg, cancel_id)  # type: ignore[arg-type]
    await click.wait_response()
    cancelled = await queued_ix.wait_original(lambda m: "Cancelled by author" in (m["content"] or ""), timeout=30)
    assert not cancelled["attachments"] and not cancelled["components"]

    # a running job: strangers are refused privately, a moderator may stop it
    running_msg = await status_with_cancel(running_ix)
    # while it runs: a progress bar with the time left, and a preview of the tiles from the latents
    with_preview = await running_ix.wait_original(
        lambda m: any(a["filename"] == "preview.jpg" for a in m["attachments"]), timeout=60
    )
    assert "s left" in with_preview["content"] and "/50" in with_preview["content"]
    cancel_id = next(b["custom_id"] for b in buttons(running_msg) if b["label"] == "Cancel")
    refused = await fake.click(stranger, running_msg, cancel_id)  # type: ignore[arg-type]
    body = (await refused.wait_response()).body
    assert body["data"]["flags"] & EPHEMERAL and "Only the member" in body["data"]["content"]
    stop = await fake.click(moderator, running_msg, cancel_id)  # type: ignore[arg-type]
    await stop.wait_response()
    stopped = await running_ix.wait_original(lambda m: "Cancelled by moderator" in (m["content"] or ""), timeout=30)
    assert not stopped["components"]
    assert not grid_messages(fake, "long job") and not grid_messages(fake, "queued job")


@pytest.fixture
async def tight_bot(fake: FakeDiscord, tiny_model: Path, tmp_path: Path) -> AsyncIterator[SeedgridBot]:
    """A bot whose own engine allows one job per member and two in all."""
    settings = parse_settings(config_text(tiny_model, tmp_path / "tight.db", per_user_limit=1).replace(
        "queue_limit = 100", "queue_limit = 2"))  # fmt: skip
    engine = await Engine.open(settings)
    try:
        client = SeedgridBot(bot_settings(fake, tiny_model, tmp_path / "unused.db"), engine=engine)
        async with running(client, fake):
            yield client
    finally:
        await engine.close(grace=0)


async def test_caps_refuse_aloud_and_store_nothing(fake: FakeDiscord, tight_bot: SeedgridBot, tmp_path: Path) -> None:
    first = await fake.slash(fake.member, "imagine", prompt="first", seed=1, steps=50, size="huge")
    await first.wait_response()
    before = await store_probe.last_job_id(tmp_path / "tight.db")
    second = await fake.slash(fake.member, "imagine", prompt="second", seed=2, steps=1, size="small")
    body = (await second.wait_response()).body
    assert body["data"]["flags"] & EPHEMERAL
    assert "already have 1 job" in body["data"]["content"]
    other = fake.add_member("other")
    third = await fake.slash(other, "imagine", prompt="third", seed=3, steps=1, size="small")
    assert (await third.wait_response()).type == 5, third.responses
    fourth = await fake.slash(fake.add_member("fourth"), "imagine", prompt="fourth", seed=4, steps=1, size="small")
    response = await fourth.wait_response()
    assert response.type == 4, response
    assert "queue is full" in response.body["data"]["content"]
    assert await store_probe.last_job_id(tmp_path / "tight.db") == before + 1  # only "third" was stored
    tight_bot.engine.cancel(before)


async def test_after_15_minutes_the_grid_arrives_as_a_channel_reply(fake: FakeDiscord, bot: SeedgridBot) -> None:
    busy = await fake.slash(fake.member, "imagine", prompt="keeps the worker busy", seed=1, steps=30, size="large")
    await busy.wait_response()
    late = await fake.slash(fake.member, "imagine", prompt="a late grid", seed=5, steps=2, size="small")
    await late.wait_response()
    original = late.original
    assert original is not None
    fake.advance(15 * 60 + 5)  # the interaction tokens expire (the fake's clock, injected)
    reply = await fake.wait_for_message(replying_to(original["id"]), timeout=120)
    assert reply["content"].startswith(f"<@{fake.member.user.id}>")
    assert reply["embeds"][0]["title"] == "a late grid"
    assert reply["author"]["id"] == str(fake.bot_user.id)
    assert len(grid_messages(fake, "a late grid")) == 1
    assert not has_grid(fake.message(original["id"]))
    assert all("50027" in e or "401" in e for e in fake.protocol_errors), fake.protocol_errors
    fake.protocol_errors.clear()


async def test_a_dropped_gateway_and_429s_still_deliver_once(fake: FakeDiscord, bot: SeedgridBot) -> None:
    limited = fake.inject("PATCH", r"/webhooks/.*/messages/@original", status=429, count=2, retry_after=0.2)
    ix = await fake.slash(fake.member, "imagine", prompt="through the storm", seed=8, steps=12, size="large")
    await ix.wait_response()
    await fake.drop_gateway()
    await ix.wait_original(lambda m: "🎨" in (m["content"] or ""), timeout=60)
    broken = fake.inject("PATCH", r"/webhooks/.*/messages/@original", status=503, count=1)
    await ix.wait_original(has_grid, timeout=120)
    assert broken.hits == 1
    await fake.wait_for_resume(timeout=30)
    await asyncio.wait_for(bot.engine.drain(), 60)  # the job's delivery has ended: nothing more will be posted
    assert len(grid_messages(fake, "through the storm")) == 1
    assert limited.hits == 2  # discord.py waited and retried; the grid still arrived once
