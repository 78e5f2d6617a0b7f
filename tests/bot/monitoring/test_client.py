"""``seedgrid check --ready [URL]`` (``bot/monitoring/client.py``) against a real endpoint: exit 0 ready,
1 not ready, 2 with one line when nothing answers or nothing says where to ask."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.config import MetricsSettings
from bot.monitoring.client import local_url, readyz_url
from bot.monitoring.health import serve
from bot.monitoring.metrics import Metrics, Snapshot
from tests.redis_server import free_port


async def test_check_ready_asks_a_running_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEEDGRID_METRICS_LISTEN", raising=False)
    ready = {"gateway": False, "model": True, "store": True}

    async def readiness() -> dict[str, bool]:
        return ready

    async def snapshot() -> Snapshot:
        return Snapshot()

    metrics = Metrics(process=False)
    server = serve("127.0.0.1:0", metrics, MetricsSettings(), readiness=readiness, snapshot=snapshot)
    try:
        # main() blocks: from a thread, so that this loop can answer the endpoint's readiness check
        assert await asyncio.to_thread(main, ["check", "--ready", server.url]) == 1
        assert capsys.readouterr().out.strip() == "not ready: gateway not ready, model ok, store ok"
        ready["gateway"] = True
        config = tmp_path / "config.toml"
        config.write_text(f'[metrics]\nlisten = "0.0.0.0:{server.port}"\n')
        assert await asyncio.to_thread(main, ["check", "--ready", "--config", str(config)]) == 0
        assert capsys.readouterr().out.strip() == "ready: gateway ok, model ok, store ok"
    finally:
        await asyncio.to_thread(server.stop)

    assert main(["check", "--ready", f"http://127.0.0.1:{free_port()}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seedgrid: error: nothing answers at http://127.0.0.1:") and err.count("\n") == 1
    assert main(["check", "--ready"]) == 2
    assert "--ready needs a URL, or --config PATH" in capsys.readouterr().err
    config.write_text("")
    assert main(["check", "--ready", "--config", str(config)]) == 2
    assert "no [metrics] listen" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert "--config PATH is required" in capsys.readouterr().err


def test_urls() -> None:
    assert local_url("0.0.0.0:9400") == "http://127.0.0.1:9400"
    assert local_url("[::]:9400") == "http://[::1]:9400"
    assert local_url("10.0.0.5:9400") == "http://10.0.0.5:9400"
    assert readyz_url("http://127.0.0.1:9400") == "http://127.0.0.1:9400/readyz"
    assert readyz_url("127.0.0.1:9400/healthz") == "http://127.0.0.1:9400/healthz"
    with pytest.raises(ValueError, match="http://"):
        readyz_url("ftp://example.net")
