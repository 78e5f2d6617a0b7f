"""Property tests through the fake Discord: adversarial slash options, modal text and custom_ids.

The bot and the fake run on their own event loop in a background thread, so hypothesis can drive
them from ordinary (synchronous) test functions. For every input: an answer within Discord's 3 s,
no unhandled exception in the bot's log, and nothing stored when the input is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.config import parse_settings
from bot.engine import Engine
from bot.jobs import SEED_LIMIT
from cogs.client import SeedgridBot
from tests import store_probe
from tests.cogs.conftest import JSON, buttons, has_grid
from tests.conftest import TEST_TOKEN, config_text
from tests.fakediscord import FakeDiscord, Interaction

T = TypeVar("T")
DEFERRED, MESSAGE, UPDATE, MODAL, EPHEMERAL = 5, 4, 6, 9, 64

# Characters that break naive bots: zero-width and direction controls, markdown, mentions, emoji, CJK.
NASTY = "\u200b\u200c\u200d\u2060\ufeff\u202e\u202d\u2066\u2067\u2069\u00ad*_~`|>#-[]()<@&!:/\\\n\t éßЖж中文😀👩‍👩‍👧"
nasty_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(NASTY))
mentions = st.sampled_from(["@everyone", "@here", "<@1>", "<@&2>", "<#3>", "<@!4>"])


class LoopThread:
    """An event loop running in a thread of its own."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Harness:
    """The fake Discord on one event loop, the real bot and its engine on another, as in real life."""

    def __init__(self, tiny_model: Path, tmp: Path) -> None:
        self.discord = LoopThread("fake-discord")
        self.botside = LoopThread("seedgrid")
        self.errors: list[logging.LogRecord] = []
        self.acks: list[float] = []
        self.sent = 0
        self.fake = FakeDiscord(token=TEST_TOKEN)
        self.discord.run(self.fake.start())
        extra = "[access]\nrate_burst = 1000\nrate_per_minute = 10000.0\n"
        text = config_text(
            tiny_model, tmp / "fuzz.db", api_base_url=self.fake.api_base_url, gateway_url=self.fake.gateway_url,
            per_user_limit=100, preview_every=0, extra=extra,
        )  # fmt: skip
        self.settings = parse_settings(text.replace("queue_limit = 100", "queue_limit = 1000"))
        self.engine = self.botside.run(Engine.open(self.settings), timeout=120)
        self.bot = SeedgridBot(self.settings, engine=self.engine)
        self.bot_task = asyncio.run_coroutine_threadsafe(self.bot.start(TEST_TOKEN), self.botside.loop)
        self.discord.run(self.fake.wait_until_ready(timeout=60))
        self.discord.run(self.fake.wait_for_commands(timeout=60))
        self.grid: JSON = self.discord.run(self._parent_grid())

    async def _parent_grid(self) -> JSON:
        ix = await self.fake.slash(self.fake.member, "imagine", prompt="a parent grid", seed=1, steps=1, size="small")
        return await ix.wait_original(has_grid, timeout=60)

    def close(self) -> None:
        self.botside.run(self.bot.close())
        self.botside.run(self.engine.close(grace=0))
        self.discord.run(self.fake.stop())
        self.botside.stop()
        self.discord.stop()

    def last_job_id(self) -> int:
        return self.botside.run(store_probe.last_job_id(self.settings.storage.database))

    def idle(self) -> None:
        """Wait until the jobs of earlier examples are done, so each example meets a quiet bot."""

        async def wait() -> None:
            await self.engine.drain()

        self.botside.run(wait(), timeout=300)

    async def answered(self, ix: Interaction) -> tuple[int, JSON]:
        response = await ix.wait_response(timeout=3.0)  # Discord's deadline
        assert ix.ack_latency is not None and ix.ack_latency < 3.0
        self.acks.append(ix.ack_latency)
        self.sent += 1
        return response.type, response.body


class ErrorLog(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)
        logging.getLogger(__name__).warning("captured: %s", self.format(record))


@pytest.fixture(scope="module")
def harness(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tiny_model, tmp_path_factory.mktemp("fuzz"))
    handler = ErrorLog(h.errors)
    for name in ("cogs", "bot", "discord"):
        logging.getLogger(name).addHandler(handler)
    try:
        yield h
        assert not h.fake.violations, h.fake.violations
        acks = sorted(h.acks)
        p50, p99 = acks[len(acks) // 2], acks[int(len(acks) * 0.99)]
        print(
            f"\nfuzzed interactions: {h.sent}; acks p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"slowest {acks[-1] * 1000:.1f} ms"
        )
    finally:
        for name in ("cogs", "bot", "discord"):
            logging.getLogger(name).removeHandler(handler)
        h.close()


FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    prompt=st.one_of(nasty_text, st.builds(lambda a, m, b: a + m + b, nasty_text, mentions, nasty_text)),
    negative=st.none() | nasty_text,
    seed=st.none() | st.integers(0, SEED_LIMIT - 1),
    steps=st.none() | st.integers(1, 2),
)
def test_slash_options(
    harness: Harness, prompt: str, negative: str | None, seed: int | None, steps: int | None
) -> None:
    prompt = prompt[:1000] or "x"
    options: dict[str, Any] = {"prompt": prompt, "size": "small", "steps": steps or 1}
    if negative:
        options["negative"] = negative[:1000]
    if seed is not None:
        options["seed"] = seed

    async def case() -> tuple[int, JSON]:
        ix = await harness.fake.slash(harness.fake.member, "imagine", **options)
        return await harness.answered(ix)

    harness.idle()
    before = harness.last_job_id()
    kind, body = harness.discord.run(case())
    if kind == MESSAGE:  # refused: privately, and nothing stored
        assert body["data"]["flags"] & EPHEMERAL
        assert harness.last_job_id() == before
    else:
        assert kind == DEFERRED
    assert not harness.errors, [r.getMessage() for r in harness.errors]


@FUZZ
@given(text=st.one_of(nasty_text, st.lists(nasty_text | mentions, max_size=8).map("\n".join)))
def test_refine_modal_text(harness: Harness, text: str) -> None:
    text = text[:4000] or "\n"  # Discord does not submit an empty required field

    async def open_form() -> Interaction:
        click = await harness.fake.click(harness.fake.member, harness.grid, buttons(harness.grid)[1]["custom_id"])  # type: ignore[arg-type]
        kind, _ = await harness.answered(click)
        assert kind == MODAL and click.modal is not None
        return click

    async def submit(click: Interaction) -> tuple[int, JSON]:
        assert click.modal is not None
        field = click.modal["components"][0]["components"][0]
        return await harness.answered(
            await harness.fake.submit_modal(harness.fake.member, click, {field["custom_id"]: text})
        )

    harness.idle()
    click = harness.discord.run(open_form())
    before = harness.last_job_id()
    kind, body = harness.discord.run(submit(click))
    if kind == MESSAGE:
        assert body["data"]["flags"] & EPHEMERAL
        assert harness.last_job_id() == before
    else:
        assert kind == UPDATE
    assert not harness.errors, [r.getMessage() for r in harness.errors]


@FUZZ
@given(
    custom_id=st.one_of(
        st.text(max_size=100),
        st.builds(lambda k, j, t: f"sg:{k}:{j}:{t}"[:100], st.sampled_from(["tile", "reroll", "cancel", "x"]),
                  st.text("0123456789-٣", max_size=25), st.text("0123456789x", max_size=3)),
    )
)  # fmt: skip
def test_tampered_custom_ids_change_nothing(harness: Harness, custom_id: str) -> None:
    """Discord only sends ids of buttons on the message; forged ones must not reach a job or crash."""
    assume(custom_id not in {b["custom_id"] for b in buttons(harness.grid)})  # a real button is not forged

    async def case() -> None:
        ix = await harness.fake.click_raw(harness.fake.member, harness.grid["id"], custom_id)  # type: ignore[arg-type]
        with contextlib.suppress(TimeoutError):
            await ix.wait_response(timeout=0.1)
        if ix.responses:
            harness.acks.append(ix.ack_latency or 0.0)
            assert ix.responses[0].type == MESSAGE and ix.responses[0].body["data"]["flags"] & EPHEMERAL
        harness.sent += 1

    harness.idle()
    before = harness.last_job_id()
    harness.discord.run(case())
    assert harness.last_job_id() == before
    assert not harness.errors, [r.getMessage() for r in harness.errors]
