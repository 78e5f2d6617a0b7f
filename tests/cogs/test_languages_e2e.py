"""The bot in Korean, through the fake Discord: the synced commands carry Korean names and descriptions (held
to Discord's spec by the fake), and a member whose Discord is in Korean gets every step of a full flow in
Korean — the queue position, the progress, the grid, its buttons, the refine form and its errors — while an
English-speaking member in the same channel keeps English."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.engine import Loading, Progress, Queued, Started
from bot.jobs import Job, JobKind, JobRequest
from bot.texts import Text, text
from cogs.client import SeedgridBot
from cogs.imagine._messages import cancelled_text, status_text
from cogs.languages import job_locale
from tests.cogs.conftest import JSON, BotFactory, buttons, has_grid
from tests.fakediscord import FakeDiscord, Permissions

KO = "ko"
EPHEMERAL = 64


def korean(sentence: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in sentence)


def fields(message: JSON) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message["embeds"][0]["fields"]}  # type: ignore[index]


def private(ix: object) -> str:
    body = ix.body  # type: ignore[attr-defined]
    assert body["data"]["flags"] & EPHEMERAL, body
    return str(body["data"]["content"])


async def test_the_synced_commands_carry_korean(fake: FakeDiscord, bot: SeedgridBot) -> None:
    imagine = next(c for c in fake.commands if c["name"] == "imagine")
    assert imagine["name_localizations"] == {KO: text("name.imagine", locale=KO)}
    assert imagine["description_localizations"] == {KO: text("imagine.description", locale=KO)}
    for option in imagine["options"]:
        assert option["name_localizations"][KO] == text(f"name.{option['name']}", locale=KO)
        assert korean(option["description_localizations"][KO]), option
    steps = next(o for o in imagine["options"] if o["name"] == "steps")
    assert steps["description_localizations"][KO] == text(
        "imagine.steps", locale=KO, min=1, max=50, default=bot.engine.models.default.steps
    )
    settings = next(c for c in fake.commands if c["name"] == "settings")
    assert settings["name_localizations"][KO] == text("name.settings", locale=KO)
    nsfw = next(o for o in settings["options"] if o["name"] == "nsfw")
    policy = next(o for o in nsfw["options"] if o["name"] == "policy")
    assert {c["value"]: c["name_localizations"][KO] for c in policy["choices"]}["blur"] == text(
        "choice.blur", locale=KO
    )
    # every command and option name went through the fake's checks of Discord's rules (lowercase, ≤ 32, …)
    assert all(KO in c.get("name_localizations", {}) for c in fake.commands)


async def test_a_korean_member_gets_the_whole_flow_in_korean(fake: FakeDiscord, bot: SeedgridBot) -> None:
    minji = fake.add_member("minji")
    blocker = await fake.slash(fake.member, "imagine", prompt="blocker", seed=1, steps=30, size="large")
    running = await blocker.wait_original(lambda m: bool(buttons(m)), timeout=30)
    ix = await fake.slash(minji, "imagine", prompt="a lighthouse", seed=3, steps=2, size="small", locale=KO)
    waiting = text("job.next", locale=KO)
    await ix.wait_original(lambda m: waiting in str(m.get("content")), timeout=30)  # second in line, in Korean
    assert buttons(ix.original)[0]["label"] == text("button.cancel", locale=KO)  # type: ignore[arg-type]
    stop = await fake.click(fake.member, running, buttons(running)[0]["custom_id"])  # type: ignore[arg-type]
    await stop.wait_response()
    grid = await ix.wait_original(has_grid, timeout=60)

    shown = [str(m.get("content") or "") for m in fake.message_history(grid["id"])]  # type: ignore[arg-type]
    news = [line.split("\n", 1)[1] for line in shown if "\n" in line]
    assert news and all(korean(line) or line.startswith("🎨 `") for line in news), news
    assert text("job.next", locale=KO) in news  # (each status line in Korean: test_every_status_line_in_korean)
    assert set(fields(grid)) >= {text(k, locale=KO) for k in ("grid.seeds", "grid.steps", "grid.size", "grid.time")}
    unit = text("grid.time_value", locale=KO, seconds=1.0).removeprefix("1.0")
    assert fields(grid)[text("grid.time", locale=KO)].endswith(unit)
    job = int(str(buttons(grid)[0]["custom_id"]).split(":")[2])
    assert grid["embeds"][0]["footer"]["text"] == text("grid.footer", locale=KO, job=job)  # type: ignore[index]
    labels = [b["label"] for b in buttons(grid)]
    assert labels[:5] == ["1", "2", "3", "4", text("button.reroll", locale=KO)]

    # the refine form, and a mistake in it, in Korean
    click = await fake.click(minji, grid, buttons(grid)[1]["custom_id"], locale=KO)  # type: ignore[arg-type]
    await click.wait_response()
    modal = click.modal
    assert modal is not None and modal["title"] == text("refine.title", locale=KO, tile=2, seed=4)
    field = modal["components"][0]["components"][0]
    assert field["label"] == text("refine.label", locale=KO)
    submit = await fake.submit_modal(minji, click, {field["custom_id"]: "\n".join("abcdefg")}, locale=KO)
    refused = private(await submit.wait_response())
    assert refused == text("error.prefix", locale=KO, message=Text("input.too_many_suffixes", max=4, count=7))

    # an English-speaking member in the same channel still reads English, on the same grid
    other = await fake.click(fake.member, grid, buttons(grid)[1]["custom_id"])  # type: ignore[arg-type]
    await other.wait_response()
    assert other.modal is not None and other.modal["title"] == text("refine.title", tile=2, seed=4)


async def test_admin_answers_follow_the_admins_language(fake: FakeDiscord, bot: SeedgridBot) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    ix = await fake.slash(admin, "seedgrid queue", locale=KO)
    assert private(await ix.wait_response()) == text("admin.queue.empty", locale=KO)
    status = private(await (await fake.slash(admin, "seedgrid status", locale=KO)).wait_response())
    assert text("duration.clock", locale=KO, hours=0, minutes=0, seconds=0).split()[0] in status


async def test_a_job_without_a_language_speaks_the_servers(fake: FakeDiscord, make_bot: BotFactory) -> None:
    """Jobs from before languages were stored (and the CLI's) take the server's primary language."""
    fake.guild.locale = KO
    async with make_bot() as bot:
        await asyncio.wait_for(bot.wait_until_ready(), 10)  # the server's locale comes with its GUILD_CREATE
        request = JobRequest(
            kind=JobKind.IMAGINE, prompt="p", negative="", seed=1, steps=1, guidance=1.0, width=64, height=64
        )
        assert job_locale(bot, Job(1, replace(request, guild_id=int(fake.guild.id)))) == KO
        assert job_locale(bot, Job(1, replace(request, guild_id=int(fake.guild.id), locale="en-GB"))) == "en-GB"
        assert job_locale(bot, Job(1, request)) is None  # no server: English


def test_every_status_line_in_korean() -> None:
    """What a job's message says while it waits, loads, starts and runs (the e2e flow may skip some: edits
    are throttled), and when it is cancelled or fails, in the language it was asked in."""
    request = JobRequest(
        kind=JobKind.IMAGINE, prompt="p", negative="", seed=1, steps=4, guidance=1.0, width=8, height=8
    )
    job = Job(7, replace(request, locale=KO))
    lines = [
        status_text(job, event, KO).split("\n", 1)[1]
        for event in (None, Queued(1), Queued(3), Loading("sd"), Started(), Progress(2, 4, 1.0))
    ]
    assert lines[:5] == [
        text("job.queued", locale=KO),
        text("job.next", locale=KO),
        text("job.position", locale=KO, position=3),
        text("job.loading_model", locale=KO, model="sd"),
        text("job.starting", locale=KO),
    ]
    assert lines[5].endswith(text("job.eta", locale=KO, seconds=1.0)) and korean(lines[5])
    assert korean(cancelled_text(job, "Minji", KO)) and korean(cancelled_text(job, None, KO))
