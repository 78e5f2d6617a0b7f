"""/seedgrid status's text (cogs/admin.py), from an engine status."""

from __future__ import annotations

from bot.engine import EngineStatus, ModelInfo
from cogs.admin import status_report


def status(model: ModelInfo) -> EngineStatus:
    return EngineStatus(model=model, waiting=1, running=0, paused=False, workers=None, run_times=[2.0])


def test_several_models_are_listed_with_the_ones_held() -> None:
    info = ModelInfo("org/flux", "cuda:0", "bfloat16", "FlowMatch", models=("sd", "flux"), loaded=("flux",))
    report = status_report(status(info), uptime=61)
    assert "**Models** sd, flux (loaded)" in report
    one = ModelInfo("org/sd", "cpu", "float32", "PNDM", models=("sd",), loaded=("sd",))
    assert "**Models**" not in status_report(status(one), uptime=61)
