"""A bot in its own process, with an event-loop lag sampler on its loop.

``python -m benchmarks._botproc seedgrid|naive --config PATH --samples OUT.json`` (token in
``DISCORD_TOKEN``). ``seedgrid`` is the real bot (``cogs.client.SeedgridBot``: the model is
loaded by ``Engine.open`` in ``setup_hook``, exactly as ``seedgrid run`` does); ``naive`` is
:class:`benchmarks.naive_bot.NaiveBot`. SIGTERM closes the client the way ``seedgrid run``
does; then the lag samples are written to ``--samples`` as JSON: ``{"wall": [...], "lag":
[...], "generations": [[start, end], ...]}`` (wall-clock seconds, lag in seconds;
``generations`` only for the naive bot). SIGUSR1 prints every asyncio task's stack to stderr,
to find a task that hangs.

The sampler is the classic probe: ``await asyncio.sleep(0.001)`` in a loop, recording how
much later than asked it woke up. A blocked loop shows as one long overshoot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from array import array
from pathlib import Path

import discord

SAMPLE_INTERVAL = 0.001


class LagSampler:
    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self.interval = interval
        self.wall = array("d")
        self.lag = array("d")

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            overshoot = time.perf_counter() - start - self.interval
            self.wall.append(time.time())
            self.lag.append(overshoot)


def dump_tasks() -> None:
    """SIGUSR1: print every pending asyncio task's stack (to find a task that hangs)."""
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks ---", file=sys.stderr)
    for task in tasks:
        print(f"task {task.get_name()}:", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)
    sys.stderr.flush()


async def run(kind: str, config: Path, token: str, sampler: LagSampler) -> list[tuple[float, float]]:
    from bot.config import load_settings
    from bot.logs import setup_logging

    settings = load_settings(config)
    setup_logging(settings.logging.level, secrets=[token])
    client: discord.Client
    if kind == "seedgrid":
        from cogs.client import SeedgridBot

        client = SeedgridBot(settings)
    else:
        from benchmarks.naive_bot import NaiveBot

        client = NaiveBot(settings)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    sampling = asyncio.create_task(sampler.run(), name="lag-sampler")
    try:
        async with client:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, lambda: loop.create_task(client.close()))
            await client.start(token)
    finally:
        sampling.cancel()
    return list(getattr(client, "generations", []))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._botproc")
    parser.add_argument("kind", choices=("seedgrid", "naive"))
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--samples", type=Path, required=True)
    args = parser.parse_args()
    sampler = LagSampler()
    generations = asyncio.run(run(args.kind, args.config, os.environ["DISCORD_TOKEN"], sampler))
    data = {"wall": sampler.wall.tolist(), "lag": sampler.lag.tolist(), "generations": generations}
    args.samples.write_text(json.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
