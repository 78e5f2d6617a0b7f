"""The progress throttle (``cogs/imagine/_status.py``): at most one edit per interval, newest text wins,
nothing after close.

``StatusEditor`` reads ``time.monotonic()`` (no injectable clock), so the throttle is checked in real
time; every wait for something to happen waits for that thing, with a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from cogs.imagine._status import Status, StatusEditor
from tests.polling import until


async def settle(turns: int = 10) -> None:
    """Let every ready task run as far as it can (no timers involved: loop turns, not seconds)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_edits_are_throttled_and_the_latest_text_wins() -> None:
    edits: list[tuple[float, str]] = []

    async def edit(status: Status) -> None:
        edits.append((time.monotonic(), status.text))

    editor = StatusEditor(edit, interval=0.2)
    for step in range(1, 31):  # the job's progress: a new status every 10 ms for ~0.3 s
        editor.update(Status(f"step {step}"))
        await asyncio.sleep(0.01)
    # the newest status is owed an edit once the interval is over: wait for that edit
    await until(lambda: bool(edits) and edits[-1][1] == "step 30", within=5, every=0.005)
    await editor.close()

    texts = [text for _, text in edits]
    assert texts[0] == "step 1"  # the first status shows at once
    assert texts[-1] == "step 30"  # the newest text is never lost
    assert len(edits) <= 4  # ~0.55 s of updates at one edit per 0.2 s
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(edits)]
    assert all(gap >= 0.19 for gap in gaps), gaps


async def test_close_waits_for_an_edit_in_flight_and_stops() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    edits: list[str] = []

    async def slow_edit(status: Status) -> None:
        started.set()
        await release.wait()
        edits.append(status.text)

    editor = StatusEditor(slow_edit, interval=0.05)
    editor.update(Status("queued"))
    await started.wait()
    closing = asyncio.create_task(editor.close())
    await settle()
    assert not closing.done()  # the final message must not overtake this edit
    editor.update(Status("too late"))
    release.set()
    await closing
    assert edits == ["queued"]


async def test_close_never_hangs_when_it_races_the_throttle_timer() -> None:
    """close() landing in the same loop turn as the throttle's timeout must still end the editor."""

    shown = asyncio.Event()

    async def edit(status: Status) -> None:
        shown.set()

    hung = 0
    for trial in range(200):
        shown.clear()
        editor = StatusEditor(edit, interval=0.02)
        editor.update(Status("first"))  # shown at once; the next update waits out the interval
        await shown.wait()
        editor.update(Status("second"))
        # deliberately racing the throttle's timer (not waiting for anything): close() lands before,
        # in, or after the loop turn in which the timer fires
        await asyncio.sleep(0.02 - (trial % 20) * 0.0005)
        try:
            await asyncio.wait_for(editor.close(), 1.0)
        except TimeoutError:
            hung += 1
    assert hung == 0, f"close() hung in {hung} of 200 trials"
