"""The status line of a job's message, event by event (cogs/imagine/_messages.py)."""

from __future__ import annotations

from bot.engine import Loading, Progress, Queued, Started
from bot.inputs import imagine_request
from bot.jobs import Job
from cogs.imagine._messages import status_text
from tests.presets import SD15

JOB = Job(7, imagine_request(SD15, prompt="a *bold* fox", seed=1))


def test_each_event_has_its_line_under_the_escaped_prompt() -> None:
    assert status_text(JOB, None) == "**a \\*bold\\* fox**\n⏳ Queued"
    assert status_text(JOB, Queued(1)).endswith("⏳ Queued — next in line")
    assert status_text(JOB, Queued(3)).endswith("position 3 in the queue")
    assert status_text(JOB, Started()).endswith("🎨 Starting…")
    assert status_text(JOB, Loading("flux_dev")).endswith("📦 Loading the model flux\\_dev…")
    assert "/" not in status_text(JOB, Progress(3, 30, elapsed=3.0)).splitlines()[0]
    assert status_text(JOB, Progress(3, 30, elapsed=3.0)).endswith(" · ~27 s left")
