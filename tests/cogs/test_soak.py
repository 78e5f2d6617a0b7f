"""The soak at CI size (tests/soak.py): members, cancels, 429s and 5xx on every delivery route, a gateway drop and
two kill -9s, and still every accepted job is delivered exactly once, cancelled, or failed aloud."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import CI, run_soak


@pytest.mark.timeout(900)
async def test_soak_every_accepted_job_is_delivered_once_cancelled_or_failed_aloud(
    tiny_model: Path, tmp_path: Path
) -> None:
    report = await run_soak(CI, tiny_model, tmp_path / "soak")
    print(f"\n{report.summary()}")
    for line in report.problems + report.notes + report.tracebacks:
        print(line)
    counts = report.counts
    assert report.violations == [], "the bot sent requests Discord's OpenAPI spec rejects"
    assert report.protocol_errors == [], "the bot broke a Discord rule"
    assert len(report.kills) == CI.kills and report.gateway.get("drops") == CI.gateway_drops
    assert sum(report.faults.values()) > 0, report.faults
    assert counts["accepted"] > 0, report.interactions
    assert counts["lost"] == 0, report.problems
    assert counts["duplicated"] == 0, report.problems
    assert counts["accepted"] == counts["delivered"] + counts["cancelled"] + counts["failed_aloud"], report.problems
    assert report.tracebacks == [], "an unexpected error in the bot's log"
    assert "the bot's token is in its log" not in report.problems
