"""Asking a running bot (or worker) whether it is ready: what ``seedgrid check --ready`` and Docker's
``HEALTHCHECK`` do. Standard library only, so the check starts fast."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from bot.config import parse_listen

TIMEOUT = 10.0


class UnreachableError(OSError):
    """Nothing answered at the URL (refused, timed out, not HTTP); the message says what happened."""


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, bool]

    def describe(self) -> str:
        """``gateway ok, model ok, store not ready``."""
        return ", ".join(f"{name} {'ok' if passed else 'not ready'}" for name, passed in sorted(self.checks.items()))


def local_url(listen: str) -> str:
    """The URL this machine reaches an endpoint listening on ``listen`` at (a wildcard address → loopback)."""
    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def readyz_url(url: str) -> str:
    """``http://host:port`` (or any path on it) → ``http://host:port/readyz``; a ``/readyz`` or ``/healthz`` is kept."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// URL such as http://127.0.0.1:9400, got {url!r}")
    path = parts.path if parts.path.rstrip("/").endswith(("/readyz", "/healthz")) else "/readyz"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def ask(url: str, *, timeout: float = TIMEOUT) -> Readiness:
    """GET ``url`` (a ``/readyz`` or ``/healthz``): 200 is ready, 503 is not; :class:`UnreachableError` otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UnreachableError(f"nothing answers at {url}: {reason}") from None
    if status not in (200, 503):
        raise UnreachableError(f"{url} answered HTTP {status}: is it seedgrid's endpoint?")
    try:
        data = json.loads(body)
    except ValueError:
        raise UnreachableError(f"{url} did not answer with JSON: is it seedgrid's endpoint?") from None
    checks = data.get("checks") or {"alive": bool(data.get("alive"))}
    return Readiness(ready=status == 200, checks={str(k): bool(v) for k, v in checks.items()})
