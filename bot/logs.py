"""Logging set-up: one format for the bot and discord.py, and secrets scrubbed from every record.

Two formats (``[logging] format``): ``text``, one readable line per record, and ``json``, one JSON object
per line for log collectors, carrying ``job`` on every line about a job. The job comes from
:data:`JOB`, a context variable the engine's follower, the local backend and a worker set while they
handle a job (:func:`about_job`), so lines of discord.py or diffusers logged meanwhile carry it too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

REDACTED = "[redacted]"

JOB: contextvars.ContextVar[int | None] = contextvars.ContextVar("seedgrid_job", default=None)
"""The job the current task (or device thread) is handling, if any; read by :class:`JsonFormatter`."""


@contextlib.contextmanager
def about_job(job_id: int | None) -> Iterator[None]:
    """Every line logged in this block (in this task or thread) is about ``job_id``."""
    token = JOB.set(job_id)
    try:
        yield
    finally:
        JOB.reset(token)


class RedactSecrets(logging.Filter):
    """Replaces every occurrence of a secret (the bot token) in a record's final message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        text = message
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
            exc_text = exc_text.replace(secret, REDACTED)
        if text != message:
            record.msg, record.args = text, None
        if record.exc_text:
            record.exc_text = exc_text
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``job`` when
    the line is about one, ``exception`` and ``stack`` when present. Runs after :class:`RedactSecrets`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if job is None:
            job = JOB.get()
        if job is not None:
            entry["job"] = job
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str, *, secrets: Iterable[str] = (), format: str = "text") -> None:
    """Log to stderr at ``level`` (``format``: text or json); discord.py's chatty loggers stay at INFO at most."""
    handler = logging.StreamHandler()
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if logging.getLevelName(level) < logging.INFO:
        for noisy in ("discord.gateway", "discord.http", "urllib3", "PIL"):
            logging.getLogger(noisy).setLevel(logging.INFO)
