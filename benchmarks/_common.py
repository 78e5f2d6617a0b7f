"""What every benchmark shares: the machine, statistics, result rows, the tiny model and its config."""

from __future__ import annotations

import datetime
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: subprocesses run here, so ``bot``, ``cogs``, ``tests`` and ``benchmarks`` import."""

MB = 1024 * 1024


# --- the machine -------------------------------------------------------------------------------


def _proc_field(path: str, name: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        return None
    return None


def _os_name() -> str:
    pretty = None
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{pretty or platform.system()} (kernel {platform.release()})"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, library versions and the date: what an absolute figure needs beside it."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    ram_gib = round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None
    usable = usable_cores()
    try:
        import torch

        torch_threads: int | None = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_threads = None
    return {
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch_threads,
        "ram_gib": ram_gib,
        "os": _os_name(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "diffusers": _version("diffusers"),
        "transformers": _version("transformers"),
        "discord.py": _version("discord.py"),
        "pillow": _version("pillow"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def describe_machine(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, torch {m['torch']}, diffusers {m['diffusers']}, discord.py {m['discord.py']}; "
        f"{m['date']}"
    )


# --- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    if math.isinf(ordered[high]):  # "never answered" sorts last; a percentile that reaches it is never too
        return ordered[high] if position > low or math.isinf(ordered[low]) else ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p99, max and mean of ``values`` (seconds in, seconds out)."""
    if not values:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": sum(values) / len(values),
    }


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs``."""
    n = len(xs)
    if n < 2:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return "never"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    """``a / b`` as ``12.3×``."""
    if b == 0 or math.isnan(a) or math.isnan(b):
        return "n/a"
    value = a / b
    if math.isinf(value):
        return "∞"
    return f"{value:.0f}×" if value >= 100 else f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# --- results -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the printed table."""

    benchmark: str
    figure: str
    seedgrid: str
    other: str = ""
    """The comparison in the same run (naive bot, four single calls, FIFO …), when there is one."""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Section:
    """What one benchmark reports: table rows, raw figures for the JSON, notes."""

    name: str
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def table(rows: Iterable[Row]) -> str:
    header = ("benchmark", "figure", "seedgrid", "compared with", "ratio", "target", "")
    lines = [
        (
            r.benchmark,
            r.figure,
            r.seedgrid,
            r.other,
            r.ratio,
            r.target,
            "" if r.ok is None else "ok" if r.ok else "MISS",
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(len(header))]

    def fmt(line: Sequence[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


# --- the bot's inputs --------------------------------------------------------------------------


def build_model(folder: Path) -> Path:
    """The test suite's tiny random SD 1.x pipeline, ``save_pretrained`` into ``folder``."""
    from tests.tiny_model import build_tiny_pipeline

    return build_tiny_pipeline(folder)


def settings_text(
    model: Path,
    database: Path,
    *,
    api_base_url: str = "https://discord.com/api/v10",
    gateway_url: str = "wss://gateway.discord.gg",
    extra: str = "",
) -> str:
    """The test suite's config (``tests.conftest.config_text``): sizes small 64², large 256², huge 512².

    ``extra`` is appended after the ``[executor]`` section (``backend = "redis"`` and a ``[redis]`` table)."""
    from tests.conftest import config_text

    return config_text(model, database, api_base_url=api_base_url, gateway_url=gateway_url, extra=extra)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory(pid: int) -> dict[str, int]:
    """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) of a process, in bytes."""
    out: dict[str, int] = {}
    for name in ("VmRSS", "VmHWM"):
        value = _proc_field(f"/proc/{pid}/status", name)
        if value:
            out[name] = int(value.split()[0]) * 1024
    return out
