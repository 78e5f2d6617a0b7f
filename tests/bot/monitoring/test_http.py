"""The monitoring endpoint (``bot/monitoring/http.py``) over real HTTP on a real socket: /metrics in
Prometheus's format, /healthz failing while the event loop is wedged, /readyz naming its checks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator

import pytest

from bot.config import MetricsSettings
from bot.monitoring.health import serve
from bot.monitoring.http import MonitoringError, MonitoringServer
from bot.monitoring.metrics import Metrics, Snapshot
from tests.metrics_probe import get_json, get_json_blocking, scrape


class Checks:
    def __init__(self) -> None:
        self.ready = {"model": True, "store": True}

    async def __call__(self) -> dict[str, bool]:
        return self.ready


async def a_snapshot() -> Snapshot:
    return Snapshot(waiting=3, running=1, members_waiting=2, models=(("cuda:0", "sd15"),))


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[MonitoringServer, Metrics, Checks]]:
    metrics = Metrics(models=[("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5")])
    checks = Checks()
    server = serve("127.0.0.1:0", metrics, MetricsSettings(health_timeout=0.5), readiness=checks, snapshot=a_snapshot)
    yield server, metrics, checks
    await asyncio.to_thread(server.stop)


async def test_metrics_are_served_in_prometheus_format(endpoint: tuple[MonitoringServer, Metrics, Checks]) -> None:
    server, metrics, _ = endpoint
    metrics.interaction("application_command")
    metrics.rate_limited("abc123", "user")
    seen = await scrape(server.url)
    assert seen.value("seedgrid_discord_interactions_total", type="application_command") == 1
    assert seen.value("seedgrid_discord_rate_limits_total", bucket="abc123", scope="user") == 1
    assert seen.value("seedgrid_queue_jobs", state="waiting") == 3  # read on the loop at scrape time
    assert seen.value("seedgrid_queue_members_waiting") == 2
    assert seen.value("seedgrid_models_loaded", device="cuda:0", model="sd15") == 1
    assert seen.value("seedgrid_event_loop_responsive") == 1
    assert seen.has(
        "seedgrid_build_info", role="bot", model="sd15", model_id="stable-diffusion-v1-5/stable-diffusion-v1-5"
    )
    assert seen.value("seedgrid_uptime_seconds") > 0
    assert seen.has("process_resident_memory_bytes")


async def test_healthz_fails_while_the_event_loop_is_wedged(
    endpoint: tuple[MonitoringServer, Metrics, Checks],
) -> None:
    server, _, _ = endpoint
    assert (await get_json(f"{server.url}/healthz"))[0] == 200
    answers: list[tuple[int, dict[str, object]]] = []

    def prober() -> None:  # from a thread: this test's own loop is about to be blocked
        time.sleep(0.2)
        answers.append(get_json_blocking(f"{server.url}/healthz"))
        answers.append(get_json_blocking(f"{server.url}/readyz"))

    thread = threading.Thread(target=prober)
    thread.start()
    time.sleep(2.0)  # noqa: ASYNC251 - the point: a blocking call wedges the event loop
    thread.join()
    (health_status, health), (ready_status, ready) = answers
    assert health_status == 503 and health["alive"] is False
    assert ready_status == 503 and ready == {"ready": False, "checks": {"event_loop": False}}
    status, body = await get_json(f"{server.url}/healthz")  # the loop runs again: alive again
    assert status == 200 and body["alive"] is True


async def test_readyz_names_each_check(endpoint: tuple[MonitoringServer, Metrics, Checks]) -> None:
    server, _, checks = endpoint
    assert await get_json(f"{server.url}/readyz") == (200, {"ready": True, "checks": {"model": True, "store": True}})
    checks.ready = {"model": True, "store": False}
    assert await get_json(f"{server.url}/readyz") == (503, {"ready": False, "checks": {"model": True, "store": False}})
    assert (await get_json(f"{server.url}/nothing"))[0] == 404


async def test_a_taken_port_is_a_one_line_error(endpoint: tuple[MonitoringServer, Metrics, Checks]) -> None:
    server, metrics, checks = endpoint
    with pytest.raises(MonitoringError, match=r"metrics\.listen: cannot listen on 127\.0\.0\.1:\d+"):
        serve(f"127.0.0.1:{server.port}", metrics, MetricsSettings(), readiness=checks, snapshot=a_snapshot)


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    metrics = Metrics(process=False)
    try:
        server = serve("[::1]:0", metrics, MetricsSettings(), readiness=Checks(), snapshot=a_snapshot)
    except MonitoringError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert server.url.startswith("http://[::1]:")
        assert (await get_json(f"{server.url}/healthz"))[0] == 200
    finally:
        await asyncio.to_thread(server.stop)
