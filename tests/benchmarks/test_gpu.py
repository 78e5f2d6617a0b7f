"""``python -m benchmarks.gpu --tiny``: the GPU benchmark's every code path, on the CPU with the tiny model.

Marked ``benchmark`` (CI runs it: about a minute on two cores). It runs in its own process, as an
admin runs it, so its compiles and the compiler stance stay out of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.benchmark
@pytest.mark.timeout(600)
def test_the_gpu_benchmark_runs_tiny_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "gpu.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    variants = report["variants"]
    assert list(variants) == ["plain", "eager", "compiled", "fp8"]
    assert variants["fp8"]["skipped"].startswith('model.quantize = "fp8": needs a CUDA GPU')
    assert report["graphs_during_timed_runs"] == 0  # nothing compiles in service
    assert variants["compiled"]["graphs_at_load"] > 0 and variants["compiled"]["graph_breaks_at_load"] == 0
    assert variants["compiled"]["compiled_shapes"]["unet"]  # each shape's compile time
    flops = report["flops"]
    assert flops["denoiser_calls"] == 5  # PNDM: 4 steps make 5 denoiser calls
    for name in ("plain", "eager", "compiled"):
        v = variants[name]
        assert v["seconds"]["runs"] == 5 and v["seconds"]["min"] <= v["seconds"]["median"] <= v["seconds"]["max"]
        assert v["split"]["denoiser"]["calls"] == flops["denoiser_calls"]
        assert v["split"]["vae_decode"]["calls"] == 1 and v["split"]["image_conversion"]["calls"] == 1
        assert not v["nonfinite_latents"]
        assert v["batch_vs_solo"]["max"] <= 3
        assert all(tile["max"] <= 3 for tile in v["difference_to_plain_per_tile"])  # same noise, same picture
        assert v["options"]
    assert "compile(unet, eager, static shapes)" in variants["compiled"]["options"]
    assert "skipped: model.quantize" in done.stdout


def test_it_needs_an_output_path() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--tiny"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and "--out" in done.stderr


def test_the_device_script_dry_run(tmp_path: Path) -> None:
    """``benchmarks/device_gpu.sh --dry-run``: the wheels and the command line are checked, nothing heavy runs."""
    done = subprocess.run(
        ["bash", "benchmarks/device_gpu.sh", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OUT": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "-m benchmarks.gpu --out " + str(tmp_path / "gpu.json") in done.stdout
    assert "dry run ok" in done.stdout
