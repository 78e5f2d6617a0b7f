"""Scale-out end to end: the real bot on the redis backend, two ``python -m bot worker`` processes,
the fake Discord. A worker is killed with SIGKILL mid-job; the other finishes it, posted once,
with the bytes the in-process backend (``LocalBackend``) gives. Then cancel crosses processes.
(``bot/remote/dispatcher.py`` and ``bot/remote/worker.py`` in separate processes; the same backend
with in-process workers is in ``tests/bot/remote/test_redis_backend.py``.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings, parse_settings
from bot.engine import Engine
from bot.inputs import imagine_request
from bot.remote.connection import connect
from bot.remote.wire import Keys
from cogs.client import SeedgridBot
from tests.cogs.conftest import JSON, buttons, has_grid
from tests.conftest import TEST_TOKEN, config_text, redis_extra
from tests.fakediscord import FakeDiscord
from tests.fakediscord.discordpy import running
from tests.presets import preset_of
from tests.redis_server import RedisServer

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.timeout(300)


class WorkerProcesses:
    def __init__(self, config: Path, folder: Path) -> None:
        self.config = config
        self.folder = folder
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, *options: str) -> None:
        log = self.folder / f"{name}.log"
        with log.open("wb") as sink:
            self.processes[name] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "worker", "--config", str(self.config), "--name", name, *options,
                cwd=ROOT, stdout=sink, stderr=sink,
            )  # fmt: skip

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text()

    async def stop_all(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest.fixture
async def scaled_out(
    fake: FakeDiscord, tiny_model: Path, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[SeedgridBot, Settings, WorkerProcesses]]:
    extra = redis_extra(redis_server.url, redis_server.prefix(), claim_idle=2.0)
    text = config_text(
        tiny_model,
        tmp_path / "bot.db",
        api_base_url=fake.api_base_url,
        gateway_url=fake.gateway_url,
        shutdown_timeout=0.0,
        extra=extra,
    )
    config = tmp_path / "config.toml"
    config.write_text(text)
    settings = parse_settings(text)
    workers = WorkerProcesses(config, tmp_path)
    await workers.start("alpha")
    await workers.start("beta", "--models", settings.model_entries[0].name)  # the flag, naming the one model
    engine = await Engine.open(settings)  # connects to Redis; loads no model
    try:
        client = SeedgridBot(settings, engine=engine)
        async with running(client, fake):
            yield client, settings, workers
    finally:
        await engine.close(grace=0)
        await workers.stop_all()
    for name in workers.processes:
        assert "Traceback" not in workers.log(name), workers.log(name)


async def wait_for_workers(engine: Engine, count: int) -> None:
    workers = await engine.wait_for_workers(180, count=count)  # two processes importing torch on two cores
    assert workers is not None and all(w.model.models == (engine.models.default.name,) for w in workers), workers


async def holder_of(settings: Settings, job_id: int) -> str:
    """The worker holding a job (Redis's pending list names the consumer)."""
    client = await connect(settings.redis)
    keys = Keys(settings.redis.prefix)
    jobs = keys.jobs_for(settings.model_entries[0].name)  # the stream of the one configured model
    try:
        async with asyncio.timeout(30):
            while True:
                pending = await client.xpending_range(jobs, keys.group, min="-", max="+", count=10)
                for entry in pending:
                    fields = (await client.xrange(jobs, entry["message_id"], entry["message_id"]))[0][1]
                    if json.loads(fields[b"job"])["id"] == job_id:
                        return str(entry["consumer"].decode())
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def started_again_at(settings: Settings, job_id: int) -> float:
    """When the job's second 'started' event was written (stream ids are Redis's clock in ms)."""
    client = await connect(settings.redis)
    try:
        entries = await client.xrange(Keys(settings.redis.prefix).events(job_id))
    finally:
        await client.aclose()
    starts = [entry_id for entry_id, fields in entries if fields[b"type"] == b"started"]
    assert len(starts) == 2, starts
    return int(starts[1].split(b"-")[0]) / 1000


def grids(fake: FakeDiscord, title: str) -> list[JSON]:
    return [m for m in fake.all_messages() if has_grid(m) and m["embeds"][0].get("title") == title]


async def test_a_killed_worker_s_job_is_finished_by_the_other_and_posted_once(
    fake: FakeDiscord, scaled_out: tuple[SeedgridBot, Settings, WorkerProcesses], engine: Engine
) -> None:
    bot, settings, workers = scaled_out
    await wait_for_workers(bot.engine, 2)

    ix = await fake.slash(fake.member, "imagine", prompt="survives a dead worker", seed=11, steps=40, size="large")
    await ix.wait_original(lambda m: "🎨" in (m["content"] or ""), timeout=60)  # running on a worker
    job_id = next(job.id for job in bot.engine.queue().running)
    victim = await holder_of(settings, job_id)
    survivor = next(name for name in workers.processes if name != victim)
    workers.processes[victim].kill()  # SIGKILL: no goodbye, no acknowledgement
    killed, killed_at = time.monotonic(), time.time()
    await workers.processes[victim].wait()

    message = await ix.wait_original(has_grid, timeout=240)
    took = time.monotonic() - killed
    await asyncio.wait_for(bot.engine.drain(), 60)  # the bot has finished following and delivering the job
    assert len(grids(fake, "survives a dead worker")) == 1
    restarted = await started_again_at(settings, job_id)
    print(
        f"\nworker killed → its job claimed and restarted elsewhere after {restarted - killed_at:.1f} s, "
        f"finished and posted after {took:.1f} s (claim_idle 2 s)"
    )
    assert f"claimed job {job_id} from {victim}" in workers.log(survivor)

    posted = fake.attachment_bytes(message["id"], message["attachments"][0]["filename"])  # type: ignore[index]
    request = imagine_request(preset_of(settings), prompt="survives a dead worker", seed=11, steps=40, size="large")
    assert (await (await engine.submit(request)).result()).grid_png == posted  # the in-process bytes

    # cancel crosses processes: the survivor stops the job at its next step
    long_ix = await fake.slash(fake.member, "imagine", prompt="stop me", seed=3, steps=50, size="large")
    running_msg = await long_ix.wait_original(
        lambda m: "🎨" in (m["content"] or "") and any(b.get("label") == "Cancel" for b in buttons(m)), timeout=60
    )
    cancel_id = next(b["custom_id"] for b in buttons(running_msg) if b["label"] == "Cancel")
    click = await fake.click(fake.member, running_msg, cancel_id)  # type: ignore[arg-type]
    await click.wait_response()
    stopped = await long_ix.wait_original(lambda m: "Cancelled" in (m["content"] or ""), timeout=60)
    assert not stopped["components"] and not grids(fake, "stop me")
    assert "cancelled by the bot" in workers.log(survivor)


async def test_the_bot_stops_with_one_line_when_redis_cannot_be_reached(
    fake: FakeDiscord, tiny_model: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    unreachable = redis_extra("redis://seedgrid:hunter2@127.0.0.1:1/0", "nowhere")
    config.write_text(
        config_text(
            tiny_model, tmp_path / "db.sqlite", api_base_url=fake.api_base_url, gateway_url=fake.gateway_url,
            extra=unreachable,
        )
    )  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "DISCORD_TOKEN": TEST_TOKEN, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "seedgrid: error: cannot use Redis at redis://seedgrid:***@127.0.0.1:1/0" in output
    assert "hunter2" not in output and "Traceback" not in output, output
