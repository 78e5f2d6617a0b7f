"""The Grafana dashboard (``docs/grafana-dashboard.json``) only asks for series the endpoint serves."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from bot.config import MetricsSettings
from bot.monitoring.health import serve
from bot.monitoring.metrics import Metrics, Snapshot
from tests.metrics_probe import scrape

DASHBOARD = Path(__file__).parents[3] / "docs" / "grafana-dashboard.json"
CUDA_ONLY = {"seedgrid_gpu_memory_allocated_bytes", "seedgrid_gpu_memory_reserved_bytes"}
"""Served only by a process whose torch has initialised CUDA (checked on a GPU machine)."""


async def test_every_series_of_the_dashboard_is_served() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for expr in exprs:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    wanted = {name for expr in exprs for name in re.findall(r"\b(seedgrid_[a-z_]+)", expr)}

    async def snapshot() -> Snapshot:
        return Snapshot(deliveries_pending=0, workers=1, models=(("cpu", "sd15"),))

    async def readiness() -> dict[str, bool]:
        return {}

    metrics = Metrics(models=[("sd15", "sd15")])
    server = serve("127.0.0.1:0", metrics, MetricsSettings(), readiness=readiness, snapshot=snapshot)
    try:
        served = {s.name for s in (await scrape(server.url)).samples}
    finally:
        await asyncio.to_thread(server.stop)
    labelled_later = {  # counters with labels appear once they have been counted; their families are declared
        f"{family.name}_total" if family.type == "counter" else family.name for family in metrics.registry.collect()
    }
    histograms = {
        f"{f.name}_{part}"
        for f in metrics.registry.collect()
        if f.type == "histogram"
        for part in ("bucket", "count", "sum")
    }
    missing = wanted - served - labelled_later - histograms - CUDA_ONLY
    assert not missing, missing
