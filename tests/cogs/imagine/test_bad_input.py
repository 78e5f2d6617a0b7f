"""Input a member can reach gets a clear, private answer and stores nothing."""

from __future__ import annotations

from bot.config import Settings
from bot.engine import Engine
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, buttons, has_grid
from tests.fakediscord import FakeDiscord

CHANNEL_MESSAGE, EPHEMERAL = 4, 64


def private_text(response_body: JSON) -> str:
    data = response_body["data"]
    assert data["flags"] & EPHEMERAL, "errors must be ephemeral"  # type: ignore[index]
    return data["content"]  # type: ignore[index,no-any-return]


async def last_job_id(settings: Settings) -> int:
    return await store_probe.last_job_id(settings.storage.database)


async def grid(fake: FakeDiscord, engine: Engine, prompt: str) -> JSON:
    ix = await fake.slash(fake.member, "imagine", prompt=prompt, seed=3, steps=1, size="small")
    await ix.wait_response()
    message = await ix.wait_original(has_grid, timeout=60)
    await engine.drain()
    return message


async def test_blank_prompt_is_refused_privately(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    before = await last_job_id(settings)
    ix = await fake.slash(fake.member, "imagine", prompt="   \u200b ")
    response = await ix.wait_response()
    assert response.type == CHANNEL_MESSAGE
    assert "empty" in private_text(response.body)
    assert await last_job_id(settings) == before


async def test_buttons_of_a_deleted_job_are_refused_privately(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    parent = await grid(fake, engine, "a forgotten grid")
    job_id = int(buttons(parent)[0]["custom_id"].split(":")[2])  # type: ignore[union-attr]
    assert await store_probe.delete_job(settings.storage.database, job_id)
    before = await last_job_id(settings)
    for button in (buttons(parent)[1], buttons(parent)[4]):  # tile 2 and re-roll
        ix = await fake.click(fake.member, parent, button["custom_id"])  # type: ignore[arg-type]
        response = await ix.wait_response()
        assert "no longer known" in private_text(response.body)
    assert await last_job_id(settings) == before


async def test_blank_or_too_many_suffixes(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    parent = await grid(fake, engine, "a kite")
    before = await last_job_id(settings)
    for text, expected in [("\n  \n", "at least one suffix"), ("a\nb\nc\nd\ne", "At most 4")]:
        click = await fake.click(fake.member, parent, buttons(parent)[0]["custom_id"])  # type: ignore[arg-type]
        await click.wait_response()
        assert click.modal is not None
        field = click.modal["components"][0]["components"][0]
        submit = await fake.submit_modal(fake.member, click, {field["custom_id"]: text})
        assert expected in private_text((await submit.wait_response()).body)
    assert await last_job_id(settings) == before
