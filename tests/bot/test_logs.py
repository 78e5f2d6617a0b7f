"""Logging (``bot/logs.py``): JSON lines with the job id on every line about a job, secrets still scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.engine import Done, LocalBackend
from bot.jobs import Job
from bot.logs import JOB, JsonFormatter, RedactSecrets, about_job, setup_logging
from tests.bot.monitoring.test_metrics import HeldRenderer, a_request

SECRET = "MTEST.fake-token.never-log-me"


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes, as ``[logging] format = "json"`` formats it (restored afterwards)."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets([SECRET]))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield sink
    root.handlers[:] = saved
    root.setLevel(level)


def lines(sink: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_json_lines_carry_the_job_and_never_the_token(json_lines: io.StringIO) -> None:
    log = logging.getLogger("seedgrid.test")
    log.info("before any job")
    with about_job(42):
        log.warning("token %s in a message", SECRET)
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            log.exception("it broke")
    assert JOB.get() is None
    first, second, third = lines(json_lines)
    assert "job" not in first and first["level"] == "INFO" and first["logger"] == "seedgrid.test"
    assert second["job"] == 42 and second["message"] == "token [redacted] in a message"
    assert third["job"] == 42 and "RuntimeError: failed with [redacted]" in str(third["exception"])
    assert SECRET not in json_lines.getvalue()
    assert str(first["time"]).endswith("+00:00")


async def test_the_lines_of_a_running_job_name_it(json_lines: io.StringIO) -> None:
    renderer = HeldRenderer()
    backend = LocalBackend({"cpu": lambda: renderer})
    await backend.start()
    try:
        renderer.gate.release()
        handle = backend.submit(Job(7, a_request(1)))
        assert isinstance(await handle.wait(), Done)
    finally:
        await backend.close(grace=0)
    done = [line for line in lines(json_lines) if "done on cpu" in str(line["message"])]
    assert done and done[0]["job"] == 7


def test_setup_logging_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", secrets=[SECRET], format="json")
        logging.getLogger("seedgrid.test").info("hello %s", SECRET)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "hello [redacted]" and entry["level"] == "INFO"
