"""The progress throttle: at most one edit per interval, newest text wins, nothing after close."""

from __future__ import annotations

import asyncio
import itertools
import time

from cogs._messages import Status, StatusEditor


async def test_edits_are_throttled_and_the_latest_text_wins() -> None:
    edits: list[tuple[float, str]] = []

    async def edit(status: Status) -> None:
        edits.append((time.monotonic(), status.text))

    editor = StatusEditor(edit, interval=0.2)
    for step in range(1, 31):
        editor.update(Status(f"step {step}"))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.25)
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
    await asyncio.sleep(0.05)
    assert not closing.done()  # the final message must not overtake this edit
    editor.update(Status("too late"))
    release.set()
    await closing
    assert edits == ["queued"]


async def test_close_never_hangs_when_it_races_the_throttle_timer() -> None:
    """close() landing in the same loop turn as the throttle's timeout must still end the editor."""

    async def edit(status: Status) -> None:
        pass

    hung = 0
    for trial in range(200):
        editor = StatusEditor(edit, interval=0.02)
        editor.update(Status("first"))  # shown at once; the next update waits out the interval
        await asyncio.sleep(0)
        editor.update(Status("second"))
        await asyncio.sleep(0.02 - (trial % 20) * 0.0005)  # around the timer's expiry
        try:
            await asyncio.wait_for(editor.close(), 1.0)
        except TimeoutError:
            hung += 1
    assert hung == 0, f"close() hung in {hung} of 200 trials"
