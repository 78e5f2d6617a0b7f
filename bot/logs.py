"""Logging set-up: one format for the bot and discord.py, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
from collections.abc import Iterable

REDACTED = "[redacted]"


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


def setup_logging(level: str, *, secrets: Iterable[str] = ()) -> None:
    """Log to stderr at ``level``; discord.py's chatty loggers stay at INFO at most."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if logging.getLevelName(level) < logging.INFO:
        for noisy in ("discord.gateway", "discord.http", "urllib3", "PIL"):
            logging.getLogger(noisy).setLevel(logging.INFO)
