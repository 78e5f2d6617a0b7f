"""Private results through the fake Discord: on the ephemeral answer while its token lives, then in the
member's direct messages, never in the channel; refused DMs leave the job undeliverable."""

from __future__ import annotations

import asyncio

from bot.config import Settings
from bot.engine import Engine
from bot.jobs import JobStatus
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, has_grid
from tests.cogs.test_settings_e2e import EPHEMERAL, private
from tests.fakediscord import FakeDiscord, Member, Permissions

DEFERRED = 5
CALLBACK = r"^/interactions/\d+/[^/]+/callback$"


async def private_member(fake: FakeDiscord, name: str) -> Member:
    """A member who wants private results, on a server that allows them."""
    admin = fake.add_member(f"{name}-admin", permissions=Permissions.MANAGE_GUILD)
    allow = await fake.slash(admin, "settings private", allowed=True)
    assert "may now have their results privately" in private(await allow.wait_response())
    member = fake.add_member(name)
    mine = await fake.slash(member, "preferences private", value=True)
    private(await mine.wait_response())
    return member


async def imagine_after_the_token_expired(fake: FakeDiscord, member: Member, prompt: str) -> None:
    """/imagine whose job only starts once its interaction token has expired (a queue longer than 15 minutes):
    the "thinking" answer is stored, its response held until the fake's clock has moved past the token's life."""
    held = fake.hold("POST", CALLBACK)
    ix = await fake.slash(member, "imagine", prompt=prompt, seed=3, steps=2, size="small")
    await asyncio.wait_for(held.reached.wait(), 10)
    fake.advance(15 * 60 + 5)
    held.release()
    response = (await ix.wait_response()).body
    assert response["type"] == DEFERRED and response["data"]["flags"] & EPHEMERAL


def in_channel(fake: FakeDiscord) -> list[JSON]:
    """What everyone in the channel sees (not ephemeral)."""
    return fake.messages(include_ephemeral=False)


def only_token_errors(fake: FakeDiscord, *allowed: str) -> None:
    assert all(any(code in e for code in ("50027", *allowed)) for e in fake.protocol_errors), fake.protocol_errors
    fake.protocol_errors.clear()


async def test_a_private_grid_is_ephemeral_then_goes_to_the_members_dms(fake: FakeDiscord, bot: SeedgridBot) -> None:
    member = await private_member(fake, "hermit")

    ix = await fake.slash(member, "imagine", prompt="a walled garden", seed=4, steps=2, size="small")
    response = (await ix.wait_response()).body
    assert response["type"] == DEFERRED and response["data"]["flags"] & EPHEMERAL
    grid = await ix.wait_original(has_grid, timeout=60)
    assert grid["flags"] & EPHEMERAL and fake.direct_messages(member) == []

    await imagine_after_the_token_expired(fake, member, "a hidden pond")
    sent = await fake.wait_for_direct_message(member, has_grid, timeout=60)
    assert sent["embeds"][0]["title"] == "a hidden pond"
    assert sent["author"]["id"] == fake.bot_user.id and not sent["flags"] & EPHEMERAL
    assert f"<@{member.id}>" not in (sent["content"] or "")  # a DM names nobody
    assert len(fake.direct_messages(member)) == 1  # progress and grid: one message, edited
    dm = fake.dm_channel(member)
    assert dm is not None and sent["channel_id"] == dm.id
    assert in_channel(fake) == []  # nothing of either job for everyone in the channel
    assert not any(has_grid(m) for m in fake.all_messages() if m["channel_id"] != dm.id and not m["flags"] & EPHEMERAL)
    await asyncio.wait_for(bot.engine.drain(), 60)
    job_id = int(sent["components"][0]["components"][0]["custom_id"].split(":")[2])
    job = await bot.engine.job(job_id)
    assert job is not None and job.status is JobStatus.DONE and job.request.private
    only_token_errors(fake)


async def test_refused_dms_leave_a_private_job_undeliverable(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    member = await private_member(fake, "recluse")
    fake.close_dms(member)
    await imagine_after_the_token_expired(fake, member, "a locked door")
    job_id = await store_probe.last_job_id(settings.storage.database)
    await asyncio.wait_for(engine.drain(), 60)

    job = await engine.job(job_id)
    assert job is not None and job.request.prompt == "a locked door" and job.request.private
    assert job.status is JobStatus.FAILED and job.error is not None
    assert "Cannot send messages to this user" in job.error, job.error  # the admin's log and the store say why
    assert job.id not in {j.id for j in await engine.undelivered()}  # not posted again at the next start
    assert fake.dm_channel(member) is not None and fake.direct_messages(member) == []
    assert in_channel(fake) == []  # never the channel instead
    assert sum("50007" in e for e in fake.protocol_errors) == 1  # refused once: progress edits do not ask again
    only_token_errors(fake, "50007")
