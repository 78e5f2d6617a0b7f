"""Monitoring end to end: the real bot through the fake Discord, its endpoint scraped over real HTTP while
jobs run. The counters and histograms move exactly with what members did (N jobs → N, one cancel → 1,
a 429 the fake injects → counted with its bucket); /readyz is false until the gateway is READY; with no
``[metrics] listen`` no port is opened; a ``python -m bot worker --metrics`` process serves its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings, parse_settings
from bot.engine import Engine
from bot.monitoring.metrics import Metrics
from cogs.client import SeedgridBot
from tests.cogs.conftest import JSON, bot_settings, buttons, has_grid
from tests.conftest import config_text, redis_extra
from tests.fakediscord import FakeDiscord
from tests.fakediscord.discordpy import running
from tests.metrics_probe import Scrape, get_json, scrape
from tests.polling import until
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).parents[2]
METRICS = '[metrics]\nlisten = "127.0.0.1:0"\nhealth_timeout = 2.0\n'


@pytest.fixture(autouse=True)
def _no_listen_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEEDGRID_METRICS_LISTEN", raising=False)


@pytest.fixture
async def watched_bot(fake: FakeDiscord, tiny_model: Path, tmp_path: Path) -> AsyncIterator[tuple[SeedgridBot, str]]:
    """The real bot with its own engine, both recording into one ``Metrics``, its endpoint on a free port."""
    settings = bot_settings(fake, tiny_model, tmp_path / "bot.db", extra=METRICS)
    metrics = Metrics.for_settings(settings, role="bot")
    engine = await Engine.open(settings, observer=metrics)
    try:
        client = SeedgridBot(settings, engine=engine, metrics=metrics)
        async with running(client, fake):
            assert client.endpoint is not None
            yield client, client.endpoint.url
    finally:
        await engine.close(grace=0)


async def status_with_cancel(ix: object) -> JSON:
    return await ix.wait_original(  # type: ignore[attr-defined,no-any-return]
        lambda m: "🎨" in (m["content"] or "") and any(b.get("label") == "Cancel" for b in buttons(m)), timeout=60
    )


async def test_the_metrics_move_exactly_with_what_members_did(
    fake: FakeDiscord, watched_bot: tuple[SeedgridBot, str]
) -> None:
    bot, url = watched_bot
    start = await scrape(url)
    assert start.value("seedgrid_model_load_seconds_count", device="cpu") == 1  # the engine's start-up load
    assert start.value("seedgrid_models_loaded", device="cpu", model="model") == 1
    assert start.value("seedgrid_jobs_submitted_total") == 0

    member = fake.add_member("painter")
    limited = fake.inject("PATCH", r"/webhooks/.*/messages/@original", status=429, count=2, retry_after=0.2)
    prompts = [f"a lighthouse number {i} by painter-{member.user.id}" for i in range(3)]
    interactions = [
        await fake.slash(member, "imagine", prompt=p, seed=i, steps=2, size="small") for i, p in enumerate(prompts)
    ]
    for ix in interactions:
        await ix.wait_original(has_grid, timeout=120)

    long_ix = await fake.slash(member, "imagine", prompt="a long one, stopped", seed=9, steps=50, size="large")
    running_msg = await status_with_cancel(long_ix)
    during = await scrape(url)
    assert during.value("seedgrid_queue_jobs", state="running") == 1
    cancel_id = next(b["custom_id"] for b in buttons(running_msg) if b["label"] == "Cancel")
    click = await fake.click(member, running_msg, cancel_id)  # type: ignore[arg-type]
    await click.wait_response()
    await long_ix.wait_original(lambda m: "Cancelled" in (m["content"] or ""), timeout=60)
    await asyncio.wait_for(bot.engine.drain(), 60)
    assert limited.hits == 2

    seen = await scrape(url)
    jobs = len(prompts)
    assert seen.value("seedgrid_jobs_submitted_total", kind="imagine", model="model") == jobs + 1
    assert seen.value("seedgrid_jobs_finished_total", outcome="done") == jobs
    assert seen.value("seedgrid_jobs_finished_total", outcome="cancelled") == 1
    assert seen.value("seedgrid_jobs_finished_total", outcome="failed") == 0
    assert seen.value("seedgrid_job_wait_seconds_count") == jobs + 1  # the cancelled job had started
    assert seen.value("seedgrid_job_run_seconds_count") == jobs
    assert seen.value("seedgrid_step_seconds_count", model="model") == jobs
    assert seen.value("seedgrid_discord_interactions_total", type="application_command") == jobs + 1
    assert seen.value("seedgrid_discord_interactions_total", type="component") == 1
    assert seen.value("seedgrid_discord_ack_seconds_count", type="application_command") == jobs + 1
    assert seen.value("seedgrid_discord_ack_seconds_count", type="component") == 1
    assert seen.value("seedgrid_discord_ack_seconds_sum") < 3 * (jobs + 2)
    rate_limits = [s for s in seen.samples if s.name == "seedgrid_discord_rate_limits_total"]
    assert sum(s.value for s in rate_limits) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", s.labels["bucket"]) and s.labels["scope"] == "user" for s in rate_limits)
    assert seen.value("seedgrid_discord_http_errors_total", status="429") == 2
    assert seen.value("seedgrid_discord_progress_edits_total") >= 1
    assert seen.value("seedgrid_discord_expired_token_deliveries_total") == 0
    assert seen.value("seedgrid_queue_jobs") == 0 and seen.value("seedgrid_deliveries_pending") == 0
    assert seen.value("seedgrid_event_loop_responsive") == 1
    assert_nothing_personal(seen, prompts, [member.user.id, fake.member.user.id, fake.guild.id, fake.channel.id])

    assert await get_json(f"{url}/readyz") == (
        200,
        {"ready": True, "checks": {"gateway": True, "model": True, "store": True}},
    )


def assert_nothing_personal(seen: Scrape, prompts: list[str], ids: list[str]) -> None:
    values = seen.label_values()
    for prompt in prompts:
        assert not any(prompt in value or (len(value) > 12 and value in prompt) for value in values), prompt
    assert not any(str(i) in seen.text for i in ids), ids


async def test_after_15_minutes_the_channel_fallback_is_counted(
    fake: FakeDiscord, watched_bot: tuple[SeedgridBot, str]
) -> None:
    _, url = watched_bot
    busy = await fake.slash(fake.member, "imagine", prompt="keeps the worker busy", seed=1, steps=8, size="large")
    await busy.wait_response()
    late = await fake.slash(fake.member, "imagine", prompt="a late grid", seed=5, steps=2, size="small")
    await late.wait_response()
    fake.advance(15 * 60 + 5)  # the interaction tokens expire (the fake's clock)
    original = late.original
    assert original is not None
    await fake.wait_for_message(
        lambda m: (m.get("message_reference") or {}).get("message_id") == original["id"] and has_grid(m), timeout=120
    )
    seen = await scrape(url)
    assert seen.value("seedgrid_discord_expired_token_deliveries_total") == 2  # both jobs' messages moved
    fake.protocol_errors.clear()  # the expired tokens' refusals, on purpose


async def test_readyz_is_false_until_the_gateway_is_ready(
    fake: FakeDiscord, engine: Engine, tiny_model: Path, tmp_path: Path
) -> None:
    client = SeedgridBot(bot_settings(fake, tiny_model, tmp_path / "unused.db", extra=METRICS), engine=engine)
    held = fake.hold("PUT", r"^/applications/\d+/commands$")  # setup_hook waits here: before the gateway
    stop = asyncio.Event()

    async def run() -> None:
        async with running(client, fake, timeout=60):
            await stop.wait()

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(held.reached.wait(), 30)
        assert client.endpoint is not None
        url = client.endpoint.url
        assert await get_json(f"{url}/readyz") == (
            503, {"ready": False, "checks": {"gateway": False, "model": True, "store": True}}
        )  # fmt: skip
        assert (await get_json(f"{url}/healthz"))[0] == 200
        held.release()

        async def ready() -> bool:
            return (await get_json(f"{url}/readyz"))[0] == 200

        await until(ready, within=30, every=0.1, what="/readyz once the gateway is READY")
        await fake.drop_gateway()  # a dropped connection: resumed, and counted
        await fake.wait_for_resume(timeout=30)
        await until(ready, within=30, every=0.1, what="/readyz after the resume")
        seen = await scrape(url)
        assert seen.value("seedgrid_discord_gateway_reconnects_total", how="resume") == 1
    finally:
        stop.set()
        await task
    await engine.drain()


def listening_sockets() -> set[str]:
    """The inodes of this process's listening TCP sockets (from /proc: no port is guessed)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening.add(fields[9])
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                mine.add(target[8:-1])
    return listening & mine


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
async def test_off_by_default_no_port_is_opened(
    fake: FakeDiscord, engine: Engine, tiny_model: Path, tmp_path: Path
) -> None:
    settings = bot_settings(fake, tiny_model, tmp_path / "unused.db")
    assert settings.metrics.listen == ""
    before = listening_sockets()
    client = SeedgridBot(settings, engine=engine)
    async with running(client, fake):
        ix = await fake.slash(fake.member, "imagine", prompt="no metrics", seed=1, steps=1, size="small")
        await ix.wait_original(has_grid, timeout=60)
        assert listening_sockets() == before
        assert client.metrics is None and client.endpoint is None and client.get_cog("Monitoring") is None
    await engine.drain()


# --- the redis backend: a worker process with its own endpoint ------------------------------------


async def test_a_worker_process_serves_its_own_endpoint(
    fake: FakeDiscord, tiny_model: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    text = config_text(
        tiny_model, tmp_path / "bot.db", api_base_url=fake.api_base_url, gateway_url=fake.gateway_url,
        extra=redis_extra(redis_server.url, redis_server.prefix(), claim_idle=2.0) + METRICS,
    )  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(text)
    settings: Settings = parse_settings(text)
    port = free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", "--config", str(config), "--name", "watched",
            "--metrics", f"127.0.0.1:{port}", cwd=ROOT, stdout=sink, stderr=sink,
        )  # fmt: skip
    worker_url = f"http://127.0.0.1:{port}"
    metrics = Metrics.for_settings(settings, role="bot")
    engine = await Engine.open(settings, observer=metrics)  # connects to Redis; loads no model
    try:
        client = SeedgridBot(settings, engine=engine, metrics=metrics)
        async with running(client, fake):
            assert client.endpoint is not None
            bot_url = client.endpoint.url

            async def worker_ready() -> bool:
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    return (await get_json(f"{worker_url}/readyz"))[0] == 200
                return False

            await until(worker_ready, within=180, every=0.5, what=f"the worker's /readyz\n{log.read_text()}")
            await engine.wait_for_workers(60)
            ix = await fake.slash(fake.member, "imagine", prompt="through a worker", seed=3, steps=2, size="small")
            await ix.wait_original(has_grid, timeout=120)
            await asyncio.wait_for(engine.drain(), 60)
            on_worker, on_bot = await scrape(worker_url), await scrape(bot_url)
    finally:
        await engine.close(grace=0)
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        except TimeoutError:
            worker.kill()
            await worker.wait()
    assert on_worker.has("seedgrid_build_info", role="worker", backend="redis")
    assert on_worker.value("seedgrid_jobs_finished_total", outcome="done") == 1
    assert on_worker.value("seedgrid_model_load_seconds_count", device="cpu", model="model") == 1
    assert on_worker.value("seedgrid_worker_claims_total") == 0
    assert on_bot.value("seedgrid_workers_live") == 1
    assert on_bot.value("seedgrid_models_loaded", device="cpu", model="model") == 1
    assert on_bot.value("seedgrid_jobs_finished_total", outcome="done") == 1
    assert on_bot.has("seedgrid_build_info", role="bot", backend="redis")
    assert "Traceback" not in log.read_text()
