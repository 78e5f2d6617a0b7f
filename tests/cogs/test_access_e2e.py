"""Access rules, the blocklist, the rate limit, the admin commands and the token, through the fake Discord."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.engine import Engine
from tests import store_probe
from tests.cogs.conftest import BotFactory, buttons, has_grid
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord, FakeDiscordError, Permissions

EPHEMERAL, CHANNEL_MESSAGE = 64, 4
ROOT = Path(__file__).parents[2]


def private(ix_response: object) -> str:
    body = ix_response.body  # type: ignore[attr-defined]
    assert body["type"] == CHANNEL_MESSAGE and body["data"]["flags"] & EPHEMERAL, body
    return str(body["data"]["content"])


async def refused(fake: FakeDiscord, member: object, **options: object) -> str:
    ix = await fake.slash(member, "imagine", **options)  # type: ignore[arg-type]
    return private(await ix.wait_response())


async def test_blocklist_refuses_privately_naming_the_rule(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine, settings: Settings
) -> None:
    async with make_bot('[safety]\nblocklist = ["gore", "re:\\\\bblood\\\\w*"]'):
        before = await store_probe.last_job_id(settings.storage.database)
        for prompt, negative, rule in [
            ("a scene of GORE", None, "gore"),
            ("a scene of g\u200bo\u200cr\u200de", None, "gore"),  # zero-width characters
            ("a scene of gоre", None, "gore"),  # Cyrillic о
            ("a calm lake", "bloodshed", "re:\\bblood\\w*"),  # the negative prompt too
        ]:
            options = {"prompt": prompt} | ({"negative": negative} if negative else {})
            text = await refused(fake, fake.member, **options)
            assert f"`{rule}`" in text, text
        assert await store_probe.last_job_id(settings.storage.database) == before

        ix = await fake.slash(fake.member, "imagine", prompt="a gorge at dawn", seed=1, steps=1, size="small")
        parent = await ix.wait_original(has_grid, timeout=60)  # no false positive
        click = await fake.click(fake.member, parent, buttons(parent)[0]["custom_id"])  # type: ignore[arg-type]
        await click.wait_response()
        assert click.modal is not None
        field = click.modal["components"][0]["components"][0]
        submit = await fake.submit_modal(fake.member, click, {field["custom_id"]: ", with gore"})
        assert "gore" in private(await submit.wait_response())  # suffixes are checked as well


async def test_channels_roles_and_author_only_refine(fake: FakeDiscord, make_bot: BotFactory) -> None:
    artists = fake.add_role("artists")
    artist = fake.add_member("artist", roles=[artists])
    other = fake.add_member("other", roles=[artists])
    outsider = fake.add_member("outsider")
    extra = f'[access]\nchannels = [{fake.channel.id}]\nroles = [{artists.id}]\nrefine = "author"\n'
    async with make_bot(extra):
        assert "channel" in await refused(fake, artist, prompt="x", channel=fake.nsfw_channel)
        assert "roles" in await refused(fake, outsider, prompt="x")
        ix = await fake.slash(artist, "imagine", prompt="a bridge", seed=1, steps=1, size="small")
        grid = await ix.wait_original(has_grid, timeout=60)
        for custom_id in (buttons(grid)[0]["custom_id"], buttons(grid)[4]["custom_id"]):
            click = await fake.click(other, grid, custom_id)  # type: ignore[arg-type]
            assert "Only the member who made this grid" in private(await click.wait_response())
        own = await fake.click(artist, grid, buttons(grid)[0]["custom_id"])  # type: ignore[arg-type]
        assert (await own.wait_response()).type == 9


async def test_the_rate_limit_says_when_to_try_again(fake: FakeDiscord, make_bot: BotFactory) -> None:
    async with make_bot("[access]\nrate_burst = 2\nrate_per_minute = 1.0\n"):
        member = fake.add_member("quick")
        for seed in (1, 2):
            ix = await fake.slash(member, "imagine", prompt="fast", seed=seed, steps=1, size="small")
            assert (await ix.wait_response()).type == 5
        text = await refused(fake, member, prompt="fast", seed=3)
        assert "try again in" in text and " s." in text
        other = fake.add_member("patient")  # one member's bucket does not touch another's
        ix = await fake.slash(other, "imagine", prompt="calm", seed=4, steps=1, size="small")
        assert (await ix.wait_response()).type == 5


async def test_long_prompts_are_told_what_was_cut(fake: FakeDiscord, make_bot: BotFactory) -> None:
    async with make_bot():
        words = " ".join(f"word{i}" for i in range(120))
        ix = await fake.slash(fake.member, "imagine", prompt=words, seed=1, steps=1, size="small")
        note = await ix.wait_followup(lambda m: "ignored" in m["content"], timeout=30)
        assert note["flags"] & EPHEMERAL
        assert "word119" in note["content"] and "word0 " not in note["content"]
        await ix.wait_original(has_grid, timeout=60)


async def test_admin_commands(fake: FakeDiscord, make_bot: BotFactory, engine: Engine) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    async with make_bot():
        group = next(c for c in fake.commands if c["name"] == "seedgrid")
        assert int(group["default_member_permissions"]) == Permissions.MANAGE_GUILD
        with pytest.raises(FakeDiscordError):  # Discord hides the group from members without Manage Server
            await fake.slash(fake.member, "seedgrid status")

        status = await fake.slash(admin, "seedgrid status")
        text = private(await status.wait_response())
        assert "**Model**" in text and "cpu" in text and "**Queue**" in text and "**Uptime**" in text

        pause = await fake.slash(admin, "seedgrid pause")
        assert "Paused" in private(await pause.wait_response())
        assert "paused" in await refused(fake, fake.member, prompt="during the pause")
        resume = await fake.slash(admin, "seedgrid resume")
        await resume.wait_response()

        long_ix = await fake.slash(fake.member, "imagine", prompt="a long one", seed=1, steps=50, size="large")
        await long_ix.wait_original(lambda m: "🎨" in (m["content"] or ""), timeout=60)
        waiting = await fake.slash(fake.member, "imagine", prompt="waits", seed=2, steps=1, size="small")
        await waiting.wait_original(lambda m: "Queued" in (m["content"] or ""), timeout=30)
        queue = await fake.slash(admin, "seedgrid queue")
        listing = private(await queue.wait_response())
        assert "running" in listing and "1. job" in listing

        job_id = int(listing.split("▶️ job ")[1].split(" ")[0])
        cancel = await fake.slash(admin, "seedgrid cancel", job=job_id)
        assert "cancelled" in private(await cancel.wait_response())
        await long_ix.wait_original(lambda m: "Cancelled by admin" in (m["content"] or ""), timeout=30)
        missing = await fake.slash(admin, "seedgrid cancel", job=10**9)
        assert "no job" in private(await missing.wait_response())
        await waiting.wait_original(has_grid, timeout=60)


async def test_the_token_never_leaks(fake: FakeDiscord, make_bot: BotFactory, tiny_model: Path, tmp_path: Path) -> None:
    async with make_bot():
        ix = await fake.slash(fake.member, "imagine", prompt="a lighthouse", seed=1, steps=1, size="small")
        await ix.wait_original(has_grid, timeout=60)
    assert not any(TEST_TOKEN in repr(d.payload) for d in fake.request_details)

    # a start-up that fails (Discord refuses the token) says so without printing it
    config = tmp_path / "config.toml"
    config.write_text(config_text(tiny_model, tmp_path / "db.sqlite", api_base_url=fake.api_base_url,
                                  gateway_url=fake.gateway_url))  # fmt: skip
    wrong = "MTwrong.token.value-that-must-not-appear"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DISCORD_TOKEN": wrong, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert wrong not in output and "Traceback" not in output, output
    assert "token" in output.lower()
    fake.protocol_errors.clear()  # the 401 answers to the wrong token
