"""The monitoring endpoint: ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP, from a thread of its own.

Why a thread and not the event loop: ``/healthz`` must fail when the loop is wedged (a blocking call, a
runaway callback), and a server on that loop would simply not answer, which a prober cannot tell from a
slow network. So a small threaded WSGI server (the standard library's, with ``prometheus_client``'s own
``/metrics`` application) answers every request, and asks the loop, through a :class:`LoopProbe`, for
what only the loop may read — each time with a deadline:

- ``/metrics``: the registry in Prometheus's text format (or OpenMetrics, as the scraper asks); the
  counters and histograms are thread-safe, the queue and devices are read on the loop at scrape time.
- ``/healthz``: 200 when the event loop runs a callback within ``[metrics] health_timeout`` seconds, else 503.
- ``/readyz``: 200 when every readiness check passes (run on the loop, within the same bound), else 503;
  the JSON body names each check.

Nothing here blocks the loop: a scrape costs it one short callback and the snapshot coroutine.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app

from bot.config import ConfigError, parse_listen
from bot.monitoring.metrics import Metrics
from bot.monitoring.probe import LoopProbe

log = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[Mapping[str, bool]]]
"""The checks of ``/readyz``, run on the event loop: name → passed."""
StartResponse = Callable[..., Any]


class MonitoringError(ConfigError):
    """The endpoint could not start (the address is taken, or cannot be bound); the message names the key."""


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up (a DNS query); nothing here needs it
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    timeout = 10  # a client that sends nothing gives its thread back after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MonitoringServer:
    """Serves one process's :class:`Metrics`, its liveness and its readiness on ``listen`` (``host:port``)."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        probe: LoopProbe,
        *,
        readiness: Readiness,
        health_timeout: float = 5.0,
    ) -> None:
        self.listen = listen
        self._host, self._port = parse_listen(listen)
        self._probe = probe
        self._readiness = readiness
        self._timeout = health_timeout
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the system chose when ``listen`` says port 0)."""
        if self._server is None:
            raise RuntimeError("the monitoring server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._host if ":" not in self._host else f"[{self._host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve (a daemon thread); :class:`MonitoringError` when the address cannot be had."""
        server_class = _Server6 if ":" in self._host else _Server
        try:
            server = server_class((self._host, self._port), _Handler)
        except OSError as exc:
            raise MonitoringError(f"metrics.listen: cannot listen on {self.listen}: {exc.strerror or exc}") from None
        server.set_app(self._app)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="seedgrid-monitoring", daemon=True
        )
        self._thread.start()
        log.info("monitoring endpoint on %s (/metrics, /healthz, /readyz)", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket (blocks for up to the poll interval: call it off the loop)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # --- the WSGI application (runs in the server's threads) ---

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", {"error": "GET only"})
        if path == "/metrics":
            result: Iterable[bytes] = self._metrics_app(environ, start_response)
            return result
        if path == "/healthz":
            return self._healthz(start_response)
        if path == "/readyz":
            return self._readyz(start_response)
        return _reply(start_response, "404 Not Found", {"error": "try /metrics, /healthz or /readyz"})

    def _healthz(self, start_response: StartResponse) -> Iterable[bytes]:
        lag = self._probe.ping(self._timeout)
        if lag is None:
            log.warning("/healthz: the event loop did not answer within %g s", self._timeout)
            body = {"alive": False, "error": f"the event loop did not answer within {self._timeout:g} s"}
            return _reply(start_response, "503 Service Unavailable", body)
        return _reply(start_response, "200 OK", {"alive": True, "loop_lag_seconds": round(lag, 6)})

    def _readyz(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            checks = dict(self._probe.run(self._readiness, self._timeout))
        except TimeoutError:
            checks = {"event_loop": False}
        except Exception:
            log.exception("/readyz: a readiness check failed")
            checks = {"checks": False}
        ready = bool(checks) and all(checks.values())
        status = "200 OK" if ready else "503 Service Unavailable"
        return _reply(start_response, status, {"ready": ready, "checks": checks})


def _reply(start_response: StartResponse, status: str, body: Mapping[str, object]) -> list[bytes]:
    data = (json.dumps(body, sort_keys=True) + "\n").encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
