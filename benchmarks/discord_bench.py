"""The figures about Discord: ack latency, event-loop lag and per-job overhead, through the fake Discord.

The fake (``tests.fakediscord.FakeDiscord``) runs in this process; each bot runs in its own
process (:mod:`benchmarks._botproc`), as it would in production, so a bot that blocks its
event loop cannot stall the fake's clock, and the fake's own work (it validates every
request against Discord's OpenAPI description) does not run on the bot's loop. Both share
the machine's cores, as Discord and a bot do not; the notes say so.

Ack latency is the fake's ``Interaction.ack_latency``: from the moment the INTERACTION_CREATE
was written to the gateway socket to the moment the first callback reached the fake. A
callback later than 3 s is refused (10062); for those the time it arrived is kept, and they
count as missed deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import math
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks._common import (
    MB,
    ROOT,
    Row,
    Section,
    cpu_seconds,
    median,
    ms,
    proc_memory,
    ratio,
    settings_text,
    summary,
)
from tests.fakediscord import FakeDiscord, Interaction

JSON = dict[str, Any]
TOKEN = "MTEST.fake-token.seedgrid-benchmarks"
ACK_DEADLINE = 3.0
ACK_TARGET_P99 = 0.050
LAG_TARGET_P99 = 0.005
LAG_TARGET_MAX = 0.100
OVERHEAD_TARGET = 0.100
BLOCKED = 0.050
"""A lag sample longer than this counts as time the loop was blocked."""


@dataclass(frozen=True)
class Plan:
    """How much to do; ``--quick`` picks the small one."""

    overhead_reps: int = 3
    overhead_steps: int = 2
    long_steps: int = 40
    queued: int = 20
    measured: int = 150
    interval: float = 0.1
    idle: float = 2.0
    what_if_threads: bool = True
    """Run seedgrid a second time with ``OMP_NUM_THREADS`` = cores - 1."""


QUICK = Plan(
    overhead_reps=1, overhead_steps=1, long_steps=8, measured=100, interval=0.05, idle=1.0, what_if_threads=False
)


# --- messages ----------------------------------------------------------------------------------


def buttons(message: JSON) -> list[JSON]:
    return [c for row in message.get("components") or [] for c in row.get("components") or []]


def has_grid(message: JSON) -> bool:
    """seedgrid's finished grid: an image, its embed and the numbered buttons."""
    return bool(message["attachments"] and message["embeds"]) and any(b.get("label") == "1" for b in buttons(message))


def button(message: JSON, label: str) -> JSON | None:
    return next((b for b in buttons(message) if b.get("label") == label), None)


def first_callback(ix: Interaction) -> tuple[float | None, bool]:
    """(seconds from dispatch to the first callback, accepted?); (None, False) when none came."""
    if ix.dispatched_at is None:
        return None, False
    if ix.responses:
        return ix.responses[0].received_at - ix.dispatched_at, True
    if ix.rejected:
        return ix.rejected[0].received_at - ix.dispatched_at, False
    return None, False


async def wait_callback(fake: FakeDiscord, ix: Interaction, within: float) -> None:
    """Until the bot answered ``ix`` (accepted or refused), or ``within`` seconds have passed."""
    with contextlib.suppress(TimeoutError):
        await fake.state.changed.wait_for(lambda: ix.responses or ix.rejected, within, "a callback")


# --- a bot in its own process ------------------------------------------------------------------

Kind = Literal["seedgrid", "naive", "cli"]


@dataclass
class BotProcess:
    kind: Kind
    process: asyncio.subprocess.Process
    database: Path
    samples: Path
    log: Path
    memory_at_exit: dict[str, int] = field(default_factory=dict)

    def memory(self) -> dict[str, int]:
        return proc_memory(self.process.pid)

    def lag_samples(self) -> JSON:
        if not self.samples.exists():
            return {"wall": [], "lag": [], "generations": []}
        data: JSON = json.loads(self.samples.read_text(encoding="utf-8"))
        return data

    def log_problems(self, after: int = 40) -> str:
        """Every WARNING/ERROR line of the bot's log, with the lines that follow each (tracebacks)."""
        try:
            lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        keep: set[int] = set()
        for i, line in enumerate(lines):
            if " ERROR " in line or " WARNING " in line or line.startswith("Traceback"):
                keep.update(range(i, min(len(lines), i + after)))
        return "\n".join(lines[i] for i in sorted(keep))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def bot_process(
    kind: Kind, fake: FakeDiscord, model: Path, workdir: Path, *, env: dict[str, str] | None = None
) -> AsyncIterator[BotProcess]:
    """Start a bot against ``fake`` (seedgrid with a lag sampler, the naive bot, or plain ``python -m bot run``).

    ``env`` adds environment variables (``OMP_NUM_THREADS`` for a what-if run)."""
    database, config = workdir / "seedgrid.db", workdir / "config.toml"
    samples, log = workdir / "lag.json", workdir / "bot.log"
    text = settings_text(model, database, api_base_url=fake.api_base_url, gateway_url=fake.gateway_url)
    await asyncio.to_thread(_write, config, text)
    if kind == "cli":
        args = ["-m", "bot", "run", "--config", str(config)]
    else:
        args = ["-m", "benchmarks._botproc", kind, "--config", str(config), "--samples", str(samples)]
    environ = {**os.environ, "DISCORD_TOKEN": fake.token, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=environ, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    bot = BotProcess(kind, process, database, samples, log)
    try:
        ready = asyncio.create_task(fake.wait_until_ready(timeout=300))
        exited = asyncio.create_task(process.wait())
        await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            raise RuntimeError(f"the {kind} bot exited ({process.returncode}) before connecting:\n{bot.log_tail()}")
        exited.cancel()
        ready.result()
        yield bot
    except BaseException:
        print(f"--- the {kind} bot's log, last lines ---\n{bot.log_tail(60)}", file=sys.stderr)
        raise
    finally:
        bot.memory_at_exit = bot.memory()
        await stop(process)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


async def stop(process: asyncio.subprocess.Process, grace: float = 60) -> None:
    """SIGTERM (the bot finishes its running job and disconnects), then SIGKILL after ``grace`` seconds."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()


class StoreReader:
    """Reads seedgrid's SQLite file (read-only, beside the running bot: WAL lets both work)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _job(self, prompt: str) -> JSON | None:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT id, status, created_at, started_at, finished_at, elapsed FROM jobs"
                " WHERE prompt = ? ORDER BY id DESC LIMIT 1",
                (prompt,),
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "status", "created_at", "started_at", "finished_at", "elapsed")
        return dict(zip(keys, row, strict=True))

    async def job(self, prompt: str) -> JSON | None:
        return await asyncio.to_thread(self._job, prompt)

    async def wait(self, prompt: str, check: Callable[[JSON], bool], within: float) -> JSON:
        async with asyncio.timeout(within):
            while True:
                job = await self.job(prompt)
                if job is not None and check(job):
                    return job
                await asyncio.sleep(0.02)


# --- one small job -----------------------------------------------------------------------------


async def warm_up(fake: FakeDiscord, bot: BotProcess) -> None:
    member = fake.add_member("warmup")
    ix = await fake.slash(member, "imagine", prompt="warm-up", seed=0, steps=1, size="small")
    if bot.kind == "naive":
        await wait_callback(fake, ix, 30)
        await fake.wait_for_message(lambda m: bool(m["attachments"]), timeout=30)
    else:
        await ix.wait_original(has_grid, timeout=60)


# --- figure 3: overhead per job ----------------------------------------------------------------


async def overhead_phase(fake: FakeDiscord, bot: BotProcess, plan: Plan) -> tuple[list[JSON], bytes]:
    """``plan.overhead_reps`` 4×512² jobs one after the other, each timed along its way.

    Returns one timeline per job (seconds) and the last grid's bytes (for the direct timings).
    """
    store = StoreReader(bot.database)
    offset = time.time() - fake.now()  # the fake's clock → wall clock (the store's timestamps)
    timelines: list[JSON] = []
    grid = b""
    for rep in range(plan.overhead_reps):
        member = fake.add_member(f"overhead{rep}")
        prompt = f"overhead {rep}"
        ix = await fake.slash(
            member, "imagine", prompt=prompt, seed=100 + 4 * rep, steps=plan.overhead_steps, size="huge"
        )
        message = await ix.wait_original(has_grid, timeout=600)
        seen = fake.now()
        job = await store.wait(prompt, lambda j: j["elapsed"] is not None and j["finished_at"] is not None, 10)
        upload = next(
            d
            for d in reversed(fake.request_details)
            if d.method == "PATCH" and ix.token in d.path and d.files and "@original" in d.path
        )
        assert ix.dispatched_at is not None
        assert ix.responses
        dispatched = ix.dispatched_at + offset
        acked = ix.responses[0].received_at + offset
        upload_start = upload.timestamp + offset
        end = seen + offset
        elapsed = float(job["elapsed"])
        timelines.append(
            {
                "end_to_end": end - dispatched,
                "pipeline": elapsed,
                "overhead": end - dispatched - elapsed,
                "overhead_to_upload": upload_start - dispatched - elapsed,
                "ack": acked - dispatched,
                "ack_to_start": job["started_at"] - acked,
                "after_pipeline": job["finished_at"] - job["started_at"] - elapsed,
                "finished_to_upload": upload_start - job["finished_at"],
                "upload_and_fake": end - upload_start,
                "grid_bytes": upload.files[0][2],
            }
        )
        grid = fake.attachment_bytes(message["id"], message["attachments"][0]["filename"])
    return timelines, grid


PNG_VARIANTS: dict[str, dict[str, int]] = {
    "level1": {"compress_level": 1},
    "level0": {"compress_level": 0},
    "huffman": {"compress_level": 1, "compress_type": 2},  # zlib's Z_HUFFMAN_ONLY
    "rle": {"compress_level": 1, "compress_type": 3},  # zlib's Z_RLE
}
"""Pillow settings compared with whatever ``bot.imaging.grid.encode_png`` does (``png_*_bot`` in the figures)."""


def _png(image: Any, **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def synthetic_tile(side: int, seed: int) -> Any:
    """SD-like content for encoding figures: smooth colour fields, mid-frequency detail, grain σ 2."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    phase = rng.uniform(0, 2 * np.pi, 3)
    fields = [
        0.5 + 0.4 * np.sin(2 * np.pi * (x * a + y * b) + p)
        for a, b, p in zip((1.3, 0.4, 0.9), (0.7, -1.1, 0.2), phase, strict=True)
    ]
    base = np.stack(fields, -1)
    detail = 0.08 * (np.sin(2 * np.pi * x * 37) * np.sin(2 * np.pi * y * 29))[..., None]
    pixels = np.clip((base + detail) * 255 + rng.normal(0, 2, (side, side, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def preview_timing(timed: Callable[[Callable[[], object]], float]) -> JSON:
    """One live preview of a 4×512² job: its latents (4 × 4×64×64, noise as at the first steps) → the JPEG grid.

    The worker thread makes one between two steps every ``executor.preview_every`` steps, so it counts
    in the pipeline's time, not in the overhead after it.
    """
    import torch

    from bot.diffusion.preview import latents_to_preview

    latents = torch.randn(4, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    latents_to_preview(latents)  # warm-up: the first call pays for imports and allocations
    return {
        "latents_to_preview": timed(lambda: latents_to_preview(latents)),
        "preview_bytes": len(latents_to_preview(latents)),
    }


async def direct_timings(grid_png: bytes, workdir: Path, reps: int = 7) -> JSON:
    """The pieces of the overhead, timed with the bot's own functions on the bot's own output."""
    from PIL import Image

    from bot.engine.store import Store
    from bot.imaging.grid import compose_grid, encode_png
    from bot.imaging.tiles import Tiles
    from bot.jobs import JobKind, JobRequest, JobResult, JobStatus

    with Image.open(io.BytesIO(grid_png)) as image:
        grid_image = image.convert("RGB")
    half_w, half_h = grid_image.width // 2, grid_image.height // 2
    tiles = [grid_image.crop((x, y, x + half_w, y + half_h)) for y in (0, half_h) for x in (0, half_w)]

    def timed(fn: Callable[[], object]) -> float:
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return median(samples)

    composed = compose_grid(tiles)
    out: JSON = {
        "compose_grid": timed(lambda: compose_grid(tiles)),
        "encode_grid_png": timed(lambda: encode_png(composed)),
        "encode_tile_pngs": timed(lambda: [encode_png(t) for t in tiles]),
        "grid_png_bytes": len(encode_png(composed)),
    }
    out.update(preview_timing(timed))

    # what-ifs for the grid's encoding: zlib level 0 (store), and level 1 with the Huffman-only or RLE
    # strategy (Pillow's compress_type), on the posted grid and on a synthetic SD-like grid
    synthetic = compose_grid([synthetic_tile(half_w, seed) for seed in range(4)])

    def encoder(picture: Any, options: dict[str, int]) -> Callable[[], object]:
        return lambda: _png(picture, **options)

    for content, picture in (("posted", composed), ("synthetic", synthetic)):
        out[f"png_{content}_bot"] = {
            "seconds": timed(functools.partial(encode_png, picture)),
            "bytes": len(encode_png(picture)),
        }
        for name, options in PNG_VARIANTS.items():
            data = _png(picture, **options)
            out[f"png_{content}_{name}"] = {
                "seconds": timed(encoder(picture, options)),
                "bytes": len(data),
            }
    try:
        from bot.imaging.flagged import apply_policy

        result = JobResult(
            job_id=1,
            tiles=(),
            grid_png=encode_png(composed),
            images=Tiles(tiles),
            elapsed=0.0,
            nsfw=(False,) * 4,
        )
        out["apply_policy_allow"] = timed(lambda: apply_policy(result, "allow"))
    except Exception as exc:  # the module is young; a change there must not stop the suite
        out["apply_policy_allow"] = f"not timed: {exc!r}"

    # the store: every write one Discord job makes, each its own commit (WAL, synchronous=NORMAL)
    request = JobRequest(
        kind=JobKind.IMAGINE, prompt="store timing", negative="", seed=1, steps=2, guidance=7.5, width=512, height=512
    )
    per_job: list[float] = []
    before_ack: list[float] = []
    store = await Store.open(workdir / "store-timing.db")
    try:
        for i in range(max(10, reps)):
            start = time.perf_counter()
            job = await store.create_job(request)
            created = time.perf_counter()
            await store.set_message(job.id, 10_000 + i)
            await store.mark_running(job.id)
            await store.mark_finished(job.id, JobStatus.DONE, elapsed=1.0)
            await store.mark_delivered(job.id, 10_000 + i)
            per_job.append(time.perf_counter() - start)
            before_ack.append(created - start)
    finally:
        await store.close()
    out["store_writes_per_job"] = median(per_job)
    out["store_create_before_ack"] = median(before_ack)
    return out


def overhead_section(timelines: list[JSON], direct: JSON, plan: Plan) -> Section:
    section = Section("overhead")
    keys = [k for k in timelines[0] if k != "grid_bytes"] if timelines else []
    med = {k: median([t[k] for t in timelines]) for k in keys}
    section.figures = {"jobs": timelines, "median": med, "direct": direct, "steps": plan.overhead_steps}
    if not timelines:
        return section
    n = len(timelines)
    section.rows.append(
        Row(
            "3 overhead",
            f"4×512² job: end-to-end − pipeline (median of {n})",
            ms(med["overhead"]),
            f"pipeline {ms(med['pipeline'])}",
            target="≤ 100 ms",
            ok=med["overhead"] <= OVERHEAD_TARGET,
        )
    )
    section.rows.append(
        Row(
            "3 overhead",
            "  … of which the bot's (until the upload starts)",
            ms(med["overhead_to_upload"]),
            target="≤ 100 ms",
            ok=med["overhead_to_upload"] <= OVERHEAD_TARGET,
        )
    )
    for key, label in (
        ("ack", "  dispatch → ack (store write first)"),
        ("ack_to_start", "  ack → job running (hops)"),
        ("after_pipeline", "  pipeline end → done (grid, its PNG, hop)"),
        ("finished_to_upload", "  done → upload starts (delivery)"),
        ("upload_and_fake", "  upload + the fake's parsing"),
    ):
        section.rows.append(Row("3 overhead", label, ms(med[key])))
    for key, label in (
        ("compose_grid", "  direct: compose_grid"),
        ("encode_grid_png", "  direct: encode_png(grid)"),
        ("encode_tile_pngs", "  direct: encode_png × 4 tiles (only if needed)"),
        ("latents_to_preview", "  direct: latents_to_preview, 4×512² job (per preview)"),
        ("store_writes_per_job", "  direct: store writes per job (5 commits)"),
    ):
        value = direct.get(key)
        if isinstance(value, float):
            section.rows.append(Row("3 overhead", label, ms(value)))
    for content in ("posted", "synthetic"):
        bot = direct.get(f"png_{content}_bot")
        for variant, label in (("level1", "Pillow, zlib level 1"), ("huffman", "Pillow, Huffman only")):
            base = direct.get(f"png_{content}_{variant}")
            if not (isinstance(bot, dict) and isinstance(base, dict)):
                continue
            section.rows.append(
                Row(
                    "3 overhead",
                    f"  encode_png, {content} 1024² grid (vs {label})",
                    f"{ms(bot['seconds'])}, {bot['bytes'] / MB:.2f} MB",
                    f"{ms(base['seconds'])}, {base['bytes'] / MB:.2f} MB",
                    ratio(base["seconds"], bot["seconds"]),
                )
            )
    section.notes.append(
        f"Overhead jobs: 4 tiles at 512², {plan.overhead_steps} step(s), nothing else queued. The timeline "
        "mixes the fake's clock with the store's wall-clock timestamps (same machine); the 'direct' rows "
        "time the bot's own functions on the grid it posted (random-weight tiles: noisier, so larger PNGs, "
        f"than real images: this grid was {direct.get('grid_png_bytes', 0) / MB:.2f} MB); the synthetic grid is "
        "SD-like content (colour fields, detail, grain)."
    )
    return section


# --- figures 1 and 2: ack latency and event-loop lag under load -------------------------------


@dataclass
class LoadResult:
    slash: list[tuple[float | None, bool, float]] = field(default_factory=list)
    """(latency, accepted, dispatched at (wall)) of each measured /imagine."""
    slash_upper: list[float] = field(default_factory=list)
    """From just before ``fake.slash`` to the first callback: an upper bound on the ack latency."""
    cancel: list[tuple[float | None, bool, float]] = field(default_factory=list)
    queued: list[tuple[float | None, bool, float]] = field(default_factory=list)
    window: tuple[float, float] = (math.nan, math.nan)
    """The long generation, wall clock."""
    idle: tuple[float, float] = (math.nan, math.nan)
    measuring: tuple[float, float] = (math.nan, math.nan)


async def load_phase(fake: FakeDiscord, bot: BotProcess, plan: Plan, *, settle_after: float = 60.0) -> LoadResult:
    """One long 4×512² generation, ``plan.queued`` jobs queued behind it, then ``plan.measured`` more
    /imagine commands at a fixed pace (open loop: the pace does not wait for the answers).

    For seedgrid every measured job is cancelled with its Cancel button once it shows one (so
    the queue stays at its size; those clicks are measured too). The naive bot has no queue
    and no button: its handlers wait their turn on the blocked loop, and some of its answers
    never reach Discord at all (their HTTP connections time out while the loop is blocked).
    So for the naive bot the answers are collected at the end: at least ``settle_after``
    seconds after the long job was sent (about as long as that job takes), then until the bot
    has sent nothing for :data:`QUIET` seconds.
    """
    result = LoadResult()
    idle_start = time.time()
    await asyncio.sleep(plan.idle)
    result.idle = (idle_start, time.time())
    sent = time.monotonic()
    long_ix, waiting = await _long_job_and_queue(fake, bot, plan)
    measured = await _measure(fake, bot, plan, result)
    if bot.kind == "naive":
        await _settle(fake, bot, [long_ix, *waiting, *(ix for ix, _ in measured)], sent + settle_after)
        offset = time.time() - fake.now()
        for ix, before in measured:
            _record(result.slash, ix, offset)
            latency, _ = first_callback(ix)
            if latency is not None and ix.dispatched_at is not None:
                result.slash_upper.append(latency + ix.dispatched_at - before)
        for ix in waiting:
            _record(result.queued, ix, offset)
        return result
    await _finish_seedgrid(fake, bot, long_ix, waiting, result)
    return result


LONG_PROMPT = "the long generation"
QUIET = 5.0
"""Seconds without a request and with (almost) no CPU used by the naive bot: it has finished."""
SETTLE_LIMIT = 900.0


def _record(records: list[tuple[float | None, bool, float]], ix: Interaction, offset: float) -> None:
    latency, accepted = first_callback(ix)
    records.append((latency, accepted, (ix.dispatched_at or math.nan) + offset))


async def _settle(fake: FakeDiscord, bot: BotProcess, interactions: list[Interaction], not_before: float) -> None:
    """Until every interaction has an answer, or (after ``not_before``) the bot has gone quiet: no
    request and under 10 % of a core for :data:`QUIET` seconds (its handlers have all run)."""
    deadline = time.monotonic() + SETTLE_LIMIT
    last = (len(fake.requests), cpu_seconds(bot.process.pid), time.monotonic())
    while time.monotonic() < deadline:
        if all(ix.responses or ix.rejected for ix in interactions):
            return
        await asyncio.sleep(0.5)
        requests, cpu, now = len(fake.requests), cpu_seconds(bot.process.pid), time.monotonic()
        if requests != last[0] or cpu - last[1] > 0.1 * (now - last[2]):
            last = (requests, cpu, now)
        elif now >= not_before and now - last[2] >= QUIET:
            return


async def _long_job_and_queue(fake: FakeDiscord, bot: BotProcess, plan: Plan) -> tuple[Interaction, list[Interaction]]:
    seedgrid = bot.kind != "naive"
    busy = fake.add_member("busy")
    long_ix = await fake.slash(busy, "imagine", prompt=LONG_PROMPT, seed=1, steps=plan.long_steps, size="huge")
    if seedgrid:
        await StoreReader(bot.database).wait(LONG_PROMPT, lambda j: j["status"] == "running", 60)
    else:
        await asyncio.sleep(1.0)  # the handler is running (and the loop with it)
    waiting: list[Interaction] = []
    for i in range(plan.queued):
        member = fake.add_member(f"queued{i}")
        ix = await fake.slash(member, "imagine", prompt=f"queued {i}", seed=10 + i, steps=2, size="small")
        waiting.append(ix)
        if seedgrid:
            await wait_callback(fake, ix, ACK_DEADLINE + 1)
    return long_ix, waiting


async def _measure(
    fake: FakeDiscord, bot: BotProcess, plan: Plan, result: LoadResult
) -> list[tuple[Interaction, float]]:
    """Send the measured commands at a fixed pace; for seedgrid, follow each (ack, then Cancel)."""
    seedgrid = bot.kind != "naive"
    offset = time.time() - fake.now()
    members = [fake.add_member(f"measured{i}") for i in range(plan.measured)]
    sent: list[tuple[Interaction, float]] = []

    async def measure(i: int) -> None:
        member = members[i]
        before = fake.now()
        ix = await fake.slash(member, "imagine", prompt=f"measured {i}", seed=1000 + i, steps=1, size="small")
        sent.append((ix, before))
        if not seedgrid:
            return
        await wait_callback(fake, ix, ACK_DEADLINE + 2)
        _record(result.slash, ix, offset)
        latency, accepted = first_callback(ix)
        if latency is None or ix.dispatched_at is None or not accepted:
            return
        result.slash_upper.append(latency + ix.dispatched_at - before)
        try:
            message = await ix.wait_original(lambda m: button(m, "Cancel") is not None, timeout=15)
        except TimeoutError:
            return
        cancel = button(message, "Cancel")
        assert cancel is not None
        click = await fake.click(member, message, cancel["custom_id"])
        await wait_callback(fake, click, ACK_DEADLINE + 2)
        _record(result.cancel, click, offset)

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    start = loop.time()
    measuring_start = time.time()
    for i in range(plan.measured):
        await asyncio.sleep(max(0.0, start + i * plan.interval - loop.time()))
        tasks.append(asyncio.create_task(measure(i)))
    await asyncio.gather(*tasks)
    result.measuring = (measuring_start, time.time())
    return sent


async def _finish_seedgrid(
    fake: FakeDiscord, bot: BotProcess, long_ix: Interaction, waiting: list[Interaction], result: LoadResult
) -> None:
    offset = time.time() - fake.now()
    for ix in waiting:
        _record(result.queued, ix, offset)
    await long_ix.wait_original(has_grid, timeout=900)
    for ix in waiting:
        await ix.wait_original(has_grid, timeout=300)
    job = await StoreReader(bot.database).wait(LONG_PROMPT, lambda j: j["finished_at"] is not None, 10)
    result.window = (float(job["started_at"]), float(job["finished_at"]))


def lag_stats(samples: JSON, window: tuple[float, float]) -> JSON:
    """Lag samples that overlap ``window`` (wall clock)."""
    start, end = window
    # a sample covers [wall - lag - interval, wall]; keep those that overlap the window
    lags = [
        lag for wall, lag in zip(samples["wall"], samples["lag"], strict=True) if wall >= start and wall - lag <= end
    ]
    stats: JSON = dict(summary(lags))
    length = end - start
    stats["window_s"] = length
    stats["blocked_share"] = sum(lag for lag in lags if lag > BLOCKED) / length if length > 0 else math.nan
    return stats


def ack_stats(records: list[tuple[float | None, bool, float]]) -> JSON:
    latencies = [lat if lat is not None else math.inf for lat, _, _ in records]
    stats: JSON = dict(summary(latencies))
    stats["missed"] = sum(1 for lat, ok, _ in records if not ok or lat is None or lat > ACK_DEADLINE)
    stats["unanswered"] = sum(1 for lat, _, _ in records if lat is None)
    return stats


def in_window(records: list[tuple[float | None, bool, float]], window: tuple[float, float]) -> int:
    return sum(1 for _, _, at in records if window[0] <= at <= window[1])


def ack_and_lag_sections(
    seed: LoadResult, seed_lag: JSON, naive: LoadResult | None, naive_lag: JSON | None, plan: Plan
) -> tuple[Section, Section]:
    ack = Section("ack")
    lag = Section("lag")
    s = ack_stats(seed.slash)
    c = ack_stats(seed.cancel)
    q = ack_stats(seed.queued)
    overlapped = in_window(seed.slash, seed.window)
    ack.figures = {
        "seedgrid": {
            "slash": s,
            "slash_upper_bound": summary(seed.slash_upper),
            "cancel_button": c,
            "queueing": q,
            "overlapped_generation": overlapped,
        },
        "plan": plan.__dict__,
    }
    n_slash = int(s["n"])
    upper = summary(seed.slash_upper)
    other, rat = "", ""
    if naive is not None:
        ns = ack_stats(naive.slash)
        ack.figures["naive"] = {
            "slash": ns,
            "slash_upper_bound": summary(naive.slash_upper),
            "queueing": ack_stats(naive.queued),
        }
        other = f"naive {ms(ns['p50'])}"
        rat = ratio(ns["p50"], upper["p50"])  # against the upper bound: the fake does not resolve ~1 ms
    ack.rows += [
        Row("1 ack", f"/imagine ack p50 (n={n_slash})", ms(s["p50"]), other, rat),
        Row(
            "1 ack",
            "/imagine ack p99",
            ms(s["p99"]),
            f"naive {ms(ack.figures['naive']['slash']['p99'])}" if naive else "",
            ratio(ack.figures["naive"]["slash"]["p99"], upper["p99"]) if naive else "",
            "≤ 50 ms",
            s["p99"] <= ACK_TARGET_P99,
        ),
        Row(
            "1 ack",
            "/imagine ack max",
            ms(s["max"]),
            f"naive {ms(ack.figures['naive']['slash']['max'])}" if naive else "",
            ratio(ack.figures["naive"]["slash"]["max"], upper["max"]) if naive else "",
        ),
        Row(
            "1 ack",
            "  upper bound p50 / p99 (from before slash())",
            f"{ms(upper['p50'])} / {ms(upper['p99'])}",
            target="≤ 50 ms",
            ok=upper["p99"] <= ACK_TARGET_P99,
        ),
        Row(
            "1 ack",
            "missed the 3 s deadline (never answered)",
            f"{s['missed']}/{n_slash} ({s['unanswered']})",
            f"naive {ack.figures['naive']['slash']['missed']}/{n_slash} ({ack.figures['naive']['slash']['unanswered']})"
            if naive
            else "",
            target="0",
            ok=s["missed"] == 0,
        ),
        Row(
            "1 ack",
            f"Cancel button ack p50 / p99 (n={c['n']})",
            f"{ms(c['p50'])} / {ms(c['p99'])}",
            target="≤ 50 ms",
            ok=c["p99"] <= ACK_TARGET_P99 if c["n"] else None,
        ),
    ]
    ack.notes.append(
        f"Load: one 4×512² job of {plan.long_steps} steps running, {plan.queued} jobs queued, then "
        f"{plan.measured} /imagine commands from {plan.measured} members, one every {plan.interval * 1000:.0f} ms "
        f"(open loop); seedgrid cancels each measured job with its button (also measured), so the queue stays at "
        f"{plan.queued}. {overlapped}/{n_slash} of seedgrid's measured commands were dispatched while the long "
        "generation ran (the rest, if any, after it)."
    )

    gen = lag_stats(seed_lag, seed.window)
    idle = lag_stats(seed_lag, seed.idle)
    lag.figures = {"seedgrid": {"generation": gen, "idle": idle}}
    other_p99, other_max, rat_max, blocked = "", "", "", ""
    if naive is not None and naive_lag is not None:
        gens = naive_lag.get("generations") or []
        longest = max(gens, key=lambda g: g[1] - g[0]) if gens else None
        window = (longest[0], longest[1]) if longest else naive.measuring
        ngen = lag_stats(naive_lag, window)
        lag.figures["naive"] = {"generation": ngen, "idle": lag_stats(naive_lag, naive.idle)}
        other_p99 = f"naive {ms(ngen['p99'])}"
        other_max = f"naive {ms(ngen['max'])}"
        rat_max = ratio(ngen["max"], gen["max"])
        blocked = f"naive {ngen['blocked_share'] * 100:.0f} %"
    lag.rows += [
        Row("2 lag", f"loop lag p50 during a generation (n={gen['n']})", ms(gen["p50"]), f"idle {ms(idle['p50'])}"),
        Row("2 lag", "loop lag p99", ms(gen["p99"]), other_p99, target="≤ 5 ms", ok=gen["p99"] <= LAG_TARGET_P99),
        Row("2 lag", "loop lag max", ms(gen["max"]), other_max, rat_max, "≤ 100 ms", gen["max"] <= LAG_TARGET_MAX),
        Row("2 lag", f"time blocked > {BLOCKED * 1000:.0f} ms", f"{gen['blocked_share'] * 100:.1f} %", blocked),
    ]
    lag.notes.append(
        "Lag: a task in the bot's own loop sleeps 1 ms and records the overshoot, all through the run; the "
        f"figures cover the samples taken while the long job ran ({gen['window_s']:.1f} s for seedgrid, "
        "under the interaction load of figure 1). A blocked loop yields one long sample, so p50/p99 flatter a "
        "bot that blocks; 'time blocked' is the share of the window spent in samples over 50 ms."
    )
    return ack, lag


def what_if_rows(
    lag: Section, base: LoadResult, base_lag: JSON, other: LoadResult, other_lag: JSON, threads: int
) -> None:
    """seedgrid as it is against seedgrid with ``OMP_NUM_THREADS=threads`` (one core left to the event loop)."""
    alt = lag_stats(other_lag, other.window)
    up, alt_up = summary(base.slash_upper), summary(other.slash_upper)
    base_len, alt_len = base.window[1] - base.window[0], other.window[1] - other.window[0]
    lag.figures["what_if_omp_threads"] = {
        "threads": threads,
        "generation": alt,
        "slash_upper_bound": alt_up,
        "long_job_s": alt_len,
        "default_long_job_s": base_len,
    }
    what = f"  what-if OMP_NUM_THREADS={threads}"
    lag.rows += [
        Row("2 lag", f"{what}: loop lag p99 / max", f"{ms(alt['p99'])} / {ms(alt['max'])}", "default: above"),
        Row(
            "2 lag",
            f"{what}: ack p99 (upper bound)",
            ms(alt_up["p99"]),
            f"default {ms(up['p99'])}",
            ratio(up["p99"], alt_up["p99"]),
        ),
        Row("2 lag", f"{what}: the long job took", ms(alt_len), f"default {ms(base_len)}", ratio(base_len, alt_len)),
    ]
    lag.notes.append(
        f"What-if: the same load on seedgrid started with OMP_NUM_THREADS={threads} (torch leaves one core to the "
        "event loop, the fake and the rest); not a bot setting today."
    )


# --- the whole Discord session -----------------------------------------------------------------


async def run(model: Path, workdir: Path, plan: Plan, want: set[str], log: Callable[[str], None]) -> list[Section]:
    """Figures 1-3: seedgrid (overhead, then the load) and, for 1-2, the naive bot under the same load.

    Every bot gets a fresh fake Discord.
    """
    sections: list[Section] = []
    load_wanted = bool(want & {"ack", "lag"})
    seed_load: LoadResult | None = None
    memory: JSON = {}

    async with FakeDiscord(token=TOKEN) as fake:
        log("seedgrid bot: starting (its own process, the tiny model through Engine.open)")
        async with bot_process("seedgrid", fake, model, workdir / "seedgrid") as bot:
            await warm_up(fake, bot)
            if "overhead" in want:
                log(f"overhead: {plan.overhead_reps} × 4×512² job(s), {plan.overhead_steps} step(s)")
                started = time.perf_counter()
                timelines, grid = await overhead_phase(fake, bot, plan)
                direct = await direct_timings(grid, workdir)
                section = overhead_section(timelines, direct, plan)
                section.seconds = time.perf_counter() - started
                sections.append(section)
            if load_wanted:
                log(f"ack/lag: seedgrid under load ({plan.measured} commands during a {plan.long_steps}-step 512² job)")
                seed_load = await load_phase(fake, bot, plan)
        seed_lag = bot.lag_samples()
        memory["seedgrid"] = bot.memory_at_exit
        violations = list(fake.violations) + list(fake.protocol_errors)
    if seed_load is None:
        return sections

    log("ack/lag: the naive bot under the same load (its deadlines will pass; that is the point)")
    async with FakeDiscord(token=TOKEN) as fake:
        async with bot_process("naive", fake, model, workdir / "naive") as naive:
            await warm_up(fake, naive)
            settle_after = 1.5 * (seed_load.window[1] - seed_load.window[0]) + 10
            naive_load = await load_phase(fake, naive, plan, settle_after=settle_after)
        naive_lag = naive.lag_samples()
        memory["naive"] = naive.memory_at_exit

    ack, lag = ack_and_lag_sections(seed_load, seed_lag, naive_load, naive_lag, plan)
    peaks = {k: v.get("VmHWM") for k, v in memory.items()}
    ack.figures["peak_rss_bytes"] = peaks
    if peaks.get("seedgrid") and peaks.get("naive"):
        ack.rows.append(
            Row(
                "1 ack",
                "bot's peak RSS in this run (512² jobs)",
                f"{peaks['seedgrid'] / MB:.0f} MB",
                f"naive {peaks['naive'] / MB:.0f} MB",
                ratio(peaks["seedgrid"], peaks["naive"]),
            )
        )
    if violations:
        ack.notes.append(f"The fake recorded {len(violations)} violation(s) by seedgrid: {violations[:5]}")

    if plan.what_if_threads:
        threads = max(1, (os.cpu_count() or 2) - 1)
        log(f"ack/lag: seedgrid again with OMP_NUM_THREADS={threads} (what-if)")
        async with FakeDiscord(token=TOKEN) as fake:
            async with bot_process(
                "seedgrid", fake, model, workdir / "seedgrid-threads", env={"OMP_NUM_THREADS": str(threads)}
            ) as alt:
                await warm_up(fake, alt)
                alt_load = await load_phase(fake, alt, plan)
            what_if_rows(lag, seed_load, seed_lag, alt_load, alt.lag_samples(), threads)
    sections += [s for s in (ack, lag) if s.name in want]
    return sections
