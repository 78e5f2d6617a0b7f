"""What the soak (tests/soak.py) found, one deterministic test each: jobs that end in silence.

Each was found by the soak, reproduced here deterministically, then fixed; the test now guards the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from discord.webhook.async_ import AsyncWebhookAdapter

from bot.config import Settings, parse_settings
from bot.engine import Engine
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, buttons, has_grid, replying_to
from tests.fakediscord import FakeDiscord
from tests.fakediscord.discordpy import running
from tests.polling import until
from tests.soak import Bots, SoakPlan, carries_the_grid, jobs_named, soak_config

INTERACTION_EDIT = r"^/webhooks/\d+/[^/]+/messages/@original$"
CHANNEL_POST = r"^/channels/\d+/messages$"


async def grid(fake: FakeDiscord, prompt: str) -> JSON:
    ix = await fake.slash(fake.member, "imagine", prompt=prompt, seed=5, steps=1, size="small")
    await ix.wait_response()
    return await ix.wait_original(has_grid, timeout=60)


async def test_a_reroll_whose_reply_cannot_be_posted_is_not_left_queued(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    """Was: ImagineCog._start_reply stored and acknowledged the job (type 6), then ``parent.reply(...)`` got a
    503 (discord.py does not retry a 503) and the exception left the handler: the member was told "Something
    went wrong", but the job stayed ``queued`` in the store, never started, with no message, counting against
    the member's per_user_limit; it ran, and was posted out of the blue, only at the next restart."""
    parent = await grid(fake, "an orphan's parent")
    fake.inject("POST", CHANNEL_POST, status=503, count=1)
    reroll = next(b for b in buttons(parent) if b.get("label") == "Re-roll")
    click = await fake.click(fake.member, parent, reroll["custom_id"])  # type: ignore[arg-type]
    assert (await click.wait_response()).type == 6  # acknowledged: the member expects a grid
    database = settings.storage.database
    before = await store_probe.last_job_id(database)

    def answered() -> bool:  # a grid replying to the parent, or the bot's private apology
        return bool(click.followups) or any(replying_to(parent["id"])(m) for m in fake.all_messages())  # type: ignore[arg-type]

    await until(answered, within=60, what="the re-roll's grid or an apology")
    await engine.drain()
    job = await engine.job(await store_probe.last_job_id(database))
    assert job is not None and job.id >= before
    # the job ended (posted, or failed aloud): it is not waiting for a restart that may be days away
    assert job.status.value != "queued", (job.status, click.followups)


async def test_five_429s_on_the_grid_upload_still_end_the_job(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings
) -> None:
    """discord.py retries a 429 four times, then raises ``HTTPException(429)``. Was: Delivery._retrying retried
    only 5xx and connection errors, _post_outcome caught only 403/404 and those, so the 429 escaped the
    listener ("its listener failed on Done"): the job stayed done, delivery started, never recorded, its
    message showing "Queued" until the next restart, and no one was told."""
    limited = fake.inject("PATCH", INTERACTION_EDIT, status=429, count=5, retry_after=0.1, when=carries_the_grid)
    ix = await fake.slash(fake.member, "imagine", prompt="rate limited for a while", seed=8, steps=1, size="small")
    await ix.wait_response()
    await until(lambda: limited.hits == 5, within=60, what="five 429s on the grid's upload")
    job_id = await store_probe.last_job_id(settings.storage.database)

    async def finished() -> bool:
        job = await engine.job(job_id)
        return job is not None and job.status.value in ("done", "failed")

    await until(finished, within=60, what="the job to finish")
    await engine.drain()
    delivered = await store_probe.delivered_jobs(settings.storage.database)
    assert job_id in delivered, ix.original  # posted (or failed aloud): recorded either way


async def test_a_dropped_connection_on_a_progress_edit_does_not_stop_the_grid(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: StatusEditor._run caught only discord.HTTPException, so an aiohttp.ClientError (a dropped
    connection, which _delivery.py counts as passing trouble) on a progress edit ended the editor task, and
    Delivery.__call__ re-raised it from ``await self._editor.close()`` when the outcome came: the grid was
    never posted (the job stayed done and undelivered, its message on its last status) until a restart."""
    real = AsyncWebhookAdapter.request
    dropped: list[str] = []

    async def drops_one_progress_edit(self: Any, route: Any, session: Any, **options: Any) -> Any:
        body = options.get("payload") or {}
        if not body and options.get("multipart"):
            body = json.loads(options["multipart"][0]["value"])
        if route.method == "PATCH" and "🎨" in str(body.get("content")) and not dropped:
            dropped.append(route.url)
            raise aiohttp.ServerDisconnectedError
        return await real(self, route, session, **options)

    monkeypatch.setattr(AsyncWebhookAdapter, "request", drops_one_progress_edit)
    ix = await fake.slash(fake.member, "imagine", prompt="a dropped progress edit", seed=9, steps=30, size="large")
    await ix.wait_response()
    job_id = await store_probe.last_job_id(settings.storage.database)

    async def finished() -> bool:
        job = await engine.job(job_id)
        return job is not None and job.status.value in ("done", "failed")

    await until(finished, within=120, what="the job to finish")
    await engine.drain()
    assert dropped, "no progress edit was made"
    assert has_grid(ix.original or {}), ix.original


async def test_a_job_cancelled_just_before_a_kill_9_says_so_after_the_restart(
    fake: FakeDiscord, tiny_model: Path, tmp_path: Path
) -> None:
    """The engine records CANCELLED in the store before the Delivery edits "Cancelled" into the message. Was: if
    the bot died in between (here: while that edit is retried through 503s), the restart did not pick the job
    up (Store.undelivered() selected only queued, running and done jobs): the message kept its last status and
    its Cancel button, which then answered "This job is no longer waiting or running". The same held for a job
    that failed."""
    database = tmp_path / "seedgrid.db"
    config = tmp_path / "config.toml"
    config.write_text(soak_config(SoakPlan(), fake, tiny_model, database), encoding="utf-8")
    bots = Bots(fake, config, tmp_path, start_within=180, environ={"OMP_NUM_THREADS": "1"})
    try:
        await bots.start()
        ix = await fake.slash(fake.member, "imagine", prompt="cancel me, then die", seed=1, steps=50, size="large")
        shown = await ix.wait_original(lambda m: bool(jobs_named(m, "sg:cancel:")), timeout=60)
        job = next(iter(jobs_named(shown, "sg:cancel:")))
        refusing = fake.inject(
            "PATCH", INTERACTION_EDIT, status=503, count=1000, when=lambda d: "Cancelled" in str(d.payload)
        )
        click = await fake.click(fake.member, shown, f"sg:cancel:{job}")
        assert (await click.wait_response()).type == 6
        await until(lambda: refusing.hits >= 2, within=60, what="the Cancelled edit to be retried")
        await bots.kill()
        refusing.count = 0  # Discord is well again
    finally:
        await bots.close()
    assert [r["status"] for r in await store_probe.jobs(database)] == ["cancelled"]

    # the next bot, on the same database (in this process: its recovery can be waited for)
    settings = parse_settings(soak_config(SoakPlan(), fake, tiny_model, database))
    engine = await Engine.open(settings)
    try:
        identified = fake.identify_count
        client = SeedgridBot(settings, engine=engine)
        async with running(client, fake, timeout=60):
            await until(lambda: fake.identify_count > identified and fake.gateway.ready, within=60)
            await engine.drain()  # whatever it recovered has ended
    finally:
        await engine.close(grace=0)
    # the restarted bot (no interaction token of its own) says so in a reply to the job's message
    said = [m for m in fake.all_messages() if (m.get("message_reference") or {}).get("message_id") == shown["id"]]
    assert any("Cancelled" in (m["content"] or "") for m in said), said
