"""``python -m bot`` as an admin runs it: a real subprocess, real config files."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import config_text, redis_extra
from tests.redis_server import RedisServer

ROOT = Path(__file__).parents[2]


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )


@pytest.fixture
def config(tiny_model: Path, tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_text(tiny_model, tmp_path / "db.sqlite"))
    return path


def test_imagine_writes_grid_and_tiles(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("imagine", "a lighthouse", "--config", config, "--seed", "5", "--steps", "2", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "seeds 5, 6, 7, 8" in result.stdout
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (128, 128)
    for index in range(1, 5):
        with Image.open(out / f"tile-{index}.png") as tile:
            assert tile.size == (64, 64)


def test_imagine_draws_with_the_model_named(tiny_model: Path, tmp_path: Path) -> None:
    """--model picks among [[models]]: the second entry's scheduler differs, and so do its pictures."""
    models = (
        f'\n[[models]]\nname = "plain"\nid = "{tiny_model}"\n'
        f'\n[[models]]\nname = "euler"\nid = "{tiny_model}"\nscheduler = "EulerDiscreteScheduler"\n'
    )
    config = tmp_path / "two.toml"
    config.write_text(config_text(None, tmp_path / "db.sqlite", extra=models))
    grids = []
    for name in ("plain", "euler"):
        out = tmp_path / name
        result = run_cli("imagine", "a lighthouse", "--config", config, "--seed", "5", "--model", name, "--out", out)
        assert result.returncode == 0, result.stderr
        grids.append((out / "grid.png").read_bytes())
    assert grids[0] != grids[1]


def test_imagine_with_suffixes_runs_the_refine_job(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "refined"
    result = run_cli(
        "imagine",
        "a lighthouse",
        "--config",
        config,
        "--seed",
        "9",
        "--steps",
        "2",
        "--suffix",
        ", at night",
        "--suffix",
        "in fog",
        "--size",
        "wide",
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "seeds 9, 9" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "tile-1.png", "tile-2.png"]
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (192, 64)


def test_check_loads_the_model_and_generates(config: Path) -> None:
    result = run_cli("check", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "on cpu" in result.stdout and "ok:" in result.stdout


BAD_ARGUMENTS = [
    (["imagine", "x", "--seed", "-3", "--out", "o"], "--seed"),
    (["imagine", "x", "--seed", "4294967296", "--out", "o"], "--seed"),
    (["imagine", "x", "--steps", "99", "--out", "o"], "Steps must be between 1 and 50"),
    (["imagine", "   ", "--out", "o"], "prompt is empty"),
    (["imagine", "x", "--suffix", "a", "--out", "o"], "--suffix re-runs one seed"),
    (["imagine", "x", "--size", "giant", "--out", "o"], "Unknown size"),
    (["imagine", "x", "--model", "nope", "--out", "o"], "There is no model 'nope' here; choose one of: model"),
]
_EACH_IN_ONE_PROCESS = """
import contextlib, io, json, sys
from bot.__main__ import main
answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
    answers.append([code, err.getvalue()])
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def refusals(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str]]:
    """The command line's entry point (what ``python -m bot`` runs) on every bad argument list, in one
    process (starting Python and torch once rather than once per case)."""
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "config.toml"
    config.write_text(config_text(tiny_model, folder / "db.sqlite"))
    cases = [[*args, "--config", str(config)] for args, _ in BAD_ARGUMENTS]
    result = subprocess.run(
        [sys.executable, "-c", _EACH_IN_ONE_PROCESS, json.dumps(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [(code, err) for code, err in json.loads(result.stdout.splitlines()[-1])]


@pytest.mark.parametrize("case", range(len(BAD_ARGUMENTS)), ids=[m for _, m in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_clearly(refusals: list[tuple[int, str]], case: int) -> None:
    code, stderr = refusals[case]
    assert code == 2
    assert BAD_ARGUMENTS[case][1] in stderr
    assert "Traceback" not in stderr


def test_bad_config_stops_startup_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[model]\ndtype = "fp8"\n')
    result = run_cli("check", "--config", config)
    assert result.returncode == 2
    assert "model.dtype" in result.stderr and "Traceback" not in result.stderr


def test_run_without_token_refuses(config: Path) -> None:
    result = run_cli("run", "--config", config, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr


def redis_config(tiny_model: Path, tmp_path: Path, url: str, prefix: str = "cli") -> Path:
    path = tmp_path / "redis.toml"
    path.write_text(config_text(tiny_model, tmp_path / "db.sqlite", extra=redis_extra(url, prefix)))
    return path


def test_worker_refuses_a_bad_device_and_an_unreachable_redis(tiny_model: Path, tmp_path: Path) -> None:
    config = redis_config(tiny_model, tmp_path, "redis://nobody:hunter2@127.0.0.1:1/0")
    result = run_cli("worker", "--config", config, "--device", "gpu7")
    assert result.returncode == 2 and "--device" in result.stderr and "cuda:N" in result.stderr
    for command in (["worker"], ["check"]):
        result = run_cli(*command, "--config", config)
        assert result.returncode == 2, result.stderr
        assert "cannot use Redis at redis://nobody:***@127.0.0.1:1/0" in result.stderr
        assert "hunter2" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_check_and_imagine_run_through_a_worker_process(
    tiny_model: Path, tmp_path: Path, redis_server: RedisServer
) -> None:
    config = redis_config(tiny_model, tmp_path, redis_server.url, redis_server.prefix())
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--config", str(config), "--name", "cli-test"],
            cwd=ROOT,
            stdout=sink,
            stderr=sink,
        )
    try:
        checked = run_cli("check", "--config", config)
        assert checked.returncode == 0, checked.stderr
        assert "1 worker(s) in Redis: cli-test" in checked.stdout and "ok:" in checked.stdout
        out = tmp_path / "out"
        drawn = run_cli("imagine", "a lighthouse", "--config", config, "--seed", "5", "--steps", "2", "--out", out)
        assert drawn.returncode == 0, drawn.stderr
        assert sorted(p.name for p in out.iterdir()) == ["grid.png", *(f"tile-{i}.png" for i in range(1, 5))]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    text = log.read_text()
    assert "worker cli-test left after 2 job(s)" in text and "Traceback" not in text


def test_upscale_vary_and_reproduce_read_the_recipe_in_the_file(tmp_path: Path) -> None:
    """Without loading a model: what each command asks for, and a clear error for a file without a recipe."""
    import dataclasses

    from bot.__main__ import CommandLineError, build_parser, request_from_file
    from bot.config import DEFAULT_MODEL, Settings
    from bot.diffusion.families import SD1
    from bot.engine.models import Catalogue
    from bot.imaging.grid import encode_png
    from bot.imaging.recipe import Recipe
    from bot.inputs import imagine_request
    from bot.jobs import JobKind

    settings = Settings()
    models = Catalogue.resolve(settings, families={DEFAULT_MODEL: SD1})
    request = dataclasses.replace(
        imagine_request(models.default, prompt="a fox", seed=20, steps=20), width=64, height=64
    )
    grid = tmp_path / "grid.png"
    grid.write_bytes(
        encode_png(Image.new("RGB", (128, 128)), metadata=Recipe.of(request, family="sd1", scheduler="").metadata())
    )

    def run(*argv: str) -> object:
        args = build_parser().parse_args([*argv, "--config", "c.toml", "--out", str(tmp_path / "out")])
        return request_from_file(settings, args, models)

    upscale = run("upscale", str(grid), "--tile", "3")
    assert (upscale.kind, upscale.seed, upscale.width, upscale.strength) == (JobKind.UPSCALE, 22, 128, 0.35)  # type: ignore[attr-defined]
    vary = run("vary", str(grid), "--tile", "2", "--strong", "--seed", "5")
    assert (vary.kind, vary.seed, vary.strength, vary.width) == (JobKind.VARY, 5, 0.75, 64)  # type: ignore[attr-defined]
    assert run("reproduce", str(grid)) == dataclasses.replace(request, parent_job=None)
    with pytest.raises(CommandLineError, match="has tiles 1 to 4"):
        run("upscale", str(grid), "--tile", "5")
    bare = tmp_path / "bare.png"
    bare.write_bytes(encode_png(Image.new("RGB", (8, 8))))
    with pytest.raises(CommandLineError, match="carries no seedgrid recipe"):
        run("vary", str(bare))
