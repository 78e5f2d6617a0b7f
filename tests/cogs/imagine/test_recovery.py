"""Nothing lost: a real bot process killed with SIGKILL or stopped with SIGTERM, restarted, delivers every job once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import pytest

from tests import store_probe
from tests.cogs.conftest import JSON, has_grid
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord, Hold, Interaction, RequestDetail
from tests.polling import until

ROOT = Path(__file__).parents[3]
IDENTIFY = 2

StartBot = Callable[[], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def start_bot(fake: FakeDiscord, tiny_model: Path, tmp_path: Path) -> AsyncIterator[StartBot]:
    """Starts ``python -m bot run`` processes on one database; all are stopped at the end."""
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(
            tiny_model,
            tmp_path / "seedgrid.db",
            api_base_url=fake.api_base_url,
            gateway_url=fake.gateway_url,
            shutdown_timeout=60.0,  # the running job must be able to finish even on a loaded machine
        )
    )
    processes: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []

    async def start() -> asyncio.subprocess.Process:
        log = tmp_path / f"bot-{len(processes)}.log"
        logs.append(log)
        with log.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(config),
                cwd=ROOT, stdout=sink, stderr=sink, env={**os.environ, "DISCORD_TOKEN": TEST_TOKEN},
            )  # fmt: skip
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()
    for log in logs:
        text = log.read_text()
        assert TEST_TOKEN not in text
        assert "Traceback" not in text, text


def grids_titled(fake: FakeDiscord, title: str) -> list[JSON]:
    return [m for m in fake.all_messages() if has_grid(m) and m["embeds"][0].get("title") == title]


async def connected(fake: FakeDiscord, count: int) -> None:
    await fake.wait_for_gateway_op(IDENTIFY, count=count, timeout=120)
    await fake.wait_until_ready(timeout=60)


async def recorded_as_delivered(database: Path, titles: Iterable[str]) -> dict[str, int | None]:
    """Until the store says each job was posted (the bot's last step for a job); the ids it posted."""
    wanted = set(titles)

    async def all_recorded() -> dict[str, int | None] | None:
        done = await store_probe.delivered(database)
        return done if wanted <= done.keys() else None

    return await until(all_recorded, within=60, every=0.1, what=f"deliveries of {sorted(wanted)} in the store")


async def showing(ix: Interaction, text: str) -> JSON:
    return await ix.wait_original(lambda m: text in (m["content"] or ""), timeout=120)


async def test_kill_9_mid_job_and_mid_queue_then_every_job_is_delivered_once(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    first = await start_bot()
    await connected(fake, 1)
    other = fake.add_member("other")
    jobs = {
        "running job": await fake.slash(fake.member, "imagine", prompt="running job", seed=1, steps=50, size="large"),
        "queued one": await fake.slash(fake.member, "imagine", prompt="queued one", seed=2, steps=2, size="small"),
        "queued two": await fake.slash(other, "imagine", prompt="queued two", seed=3, steps=2, size="small"),
    }
    await showing(jobs["running job"], "🎨")
    await showing(jobs["queued two"], "Queued")
    first.kill()  # SIGKILL: no chance to clean up
    await first.wait()
    assert not any(grids_titled(fake, title) for title in jobs)

    restarted = time.monotonic()
    await start_bot()
    first_recovered = await fake.wait_for_message(has_grid, timeout=180)
    recovery_time = time.monotonic() - restarted
    for title, ix in jobs.items():
        original = ix.original
        assert original is not None
        await fake.wait_for_message(lambda m, t=title: has_grid(m) and m["embeds"][0]["title"] == t, timeout=180)
    posted = await recorded_as_delivered(tmp_path / "seedgrid.db", jobs)  # each delivery has ended
    print(f"\nrestart → first recovered delivery: {recovery_time:.1f} s ({first_recovered['embeds'][0]['title']})")
    for title, ix in jobs.items():
        grids = grids_titled(fake, title)
        assert len(grids) == 1, (title, grids)
        assert grids[0]["id"] == str(posted[title])  # and the store names that very message
        reference = grids[0].get("message_reference") or {}
        assert reference.get("message_id") == ix.original["id"]  # type: ignore[index]
        assert grids[0]["content"].startswith(f"<@{ix.user.user.id}>")


async def test_sigterm_finishes_the_running_job_and_keeps_the_queue(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    first = await start_bot()
    await connected(fake, 1)
    running = await fake.slash(fake.member, "imagine", prompt="finish me", seed=4, steps=12, size="large")
    waiting = await fake.slash(fake.member, "imagine", prompt="keep me", seed=5, steps=2, size="small")
    await showing(running, "🎨")
    await showing(waiting, "Queued")
    first.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(first.wait(), 60) == 0
    assert len(grids_titled(fake, "finish me")) == 1  # it had its grace period
    assert "restarting" in (await showing(waiting, "restarting"))["content"]
    assert not grids_titled(fake, "keep me")

    await start_bot()
    await fake.wait_for_message(lambda m: has_grid(m) and m["embeds"][0]["title"] == "keep me", timeout=180)
    posted = await recorded_as_delivered(tmp_path / "seedgrid.db", ["finish me", "keep me"])
    for title in ("finish me", "keep me"):
        grids = grids_titled(fake, title)
        assert len(grids) == 1, (title, grids)
        assert grids[0]["id"] == str(posted[title])


def carries_the_grid(detail: RequestDetail) -> bool:
    """The request that posts a finished grid (its image is named ``seedgrid-<job>.<ext>``)."""
    return any(filename.startswith("seedgrid-") for _, filename, _ in detail.files)


async def killed_in_the_window(fake: FakeDiscord, hold: Hold, bot: asyncio.subprocess.Process) -> None:
    """Discord has stored the grid; the bot is killed before it hears so (and so before it records it)."""
    await asyncio.wait_for(hold.reached.wait(), 180)
    bot.kill()
    await bot.wait()
    hold.release()


async def test_kill_9_after_discord_stored_the_grid_edit_then_it_is_not_posted_again(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    hold = fake.hold("PATCH", r"^/webhooks/\d+/[^/]+/messages/@original$", when=carries_the_grid)
    first = await start_bot()
    await connected(fake, 1)
    ix = await fake.slash(fake.member, "imagine", prompt="stored then killed", seed=6, steps=2, size="small")
    await killed_in_the_window(fake, hold, first)
    assert len(grids_titled(fake, "stored then killed")) == 1  # on Discord, unrecorded by the bot

    await start_bot()
    await connected(fake, 2)
    posted = await recorded_as_delivered(tmp_path / "seedgrid.db", ["stored then killed"])
    grids = grids_titled(fake, "stored then killed")
    assert len(grids) == 1, grids
    assert grids[0]["id"] == str(posted["stored then killed"]) == ix.original["id"]  # type: ignore[index]
    log = (tmp_path / "bot-1.log").read_text()
    assert "already on Discord" in log and " done on " not in log  # found, and never drawn again


async def test_kill_9_after_discord_stored_a_channel_delivery_then_it_is_not_posted_again(
    fake: FakeDiscord, start_bot: StartBot, tmp_path: Path
) -> None:
    hold = fake.hold(None, r"^/channels/\d+/messages(/\d+)?$", when=carries_the_grid)
    first = await start_bot()
    await connected(fake, 1)
    ix = await fake.slash(fake.member, "imagine", prompt="posted by the bot", seed=7, steps=2, size="small")
    await ix.wait_response()
    fake.advance(15 * 60 + 1)  # the interaction token expires: the job's message goes through the channel
    await killed_in_the_window(fake, hold, first)
    assert len(grids_titled(fake, "posted by the bot")) == 1

    await start_bot()
    await connected(fake, 2)
    posted = await recorded_as_delivered(tmp_path / "seedgrid.db", ["posted by the bot"])
    grids = grids_titled(fake, "posted by the bot")
    assert len(grids) == 1, grids
    assert grids[0]["id"] == str(posted["posted by the bot"])
    assert grids[0]["id"] != ix.original["id"]  # type: ignore[index]  # a channel message, not the response
    log = (tmp_path / "bot-1.log").read_text()
    assert "already on Discord" in log and " done on " not in log
    # the bots learnt of the expiry from Discord's 401s (their own clocks were not moved)
    assert all("50027" in e or "401" in e for e in fake.protocol_errors), fake.protocol_errors
    fake.protocol_errors.clear()
