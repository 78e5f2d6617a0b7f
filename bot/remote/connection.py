"""Connecting to Redis for the dispatcher and the workers: one place for URLs, TLS and errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.config import RedisSettings
from bot.remote.wire import Keys

log = logging.getLogger(__name__)


class RedisUnavailableError(RuntimeError):
    """Redis could not be reached or refused us; the message says which and where (without a password)."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs and error messages)."""
    return re.sub(r"(?<=://)([^/@]*?):[^/@]*@", r"\1:***@", url)


async def connect(settings: RedisSettings, *, url: str | None = None) -> aioredis.Redis:
    """A client for ``settings`` (``SEEDGRID_REDIS_URL`` or ``redis.url``), checked with a PING."""
    url = url or settings.resolved_url()
    options: dict[str, Any] = {"health_check_interval": 30}
    if not url.startswith("unix://"):
        options["socket_keepalive"] = True  # notice a peer that vanished (a machine lost, not just a process)
    if url.startswith("rediss://") and settings.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.tls_ca_file)
    client = aioredis.from_url(url, **options)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        raise RedisUnavailableError(f"cannot use Redis at {redact(url)}: {_reason(exc)}") from None
    log.info("connected to Redis at %s", redact(url))
    return client


async def ensure_group(client: aioredis.Redis, keys: Keys, models: Iterable[str]) -> None:
    """Create the job stream of each of ``models`` (names) and its consumer group unless they exist.

    The group starts at ``0``: jobs added before it existed (Redis lost its data and the bot wrote
    again first) are still delivered."""
    for model in models:
        try:
            await client.xgroup_create(keys.jobs_for(model), keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
