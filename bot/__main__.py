"""Command line: ``python -m bot run | worker | check | imagine | reproduce | upscale | vary`` (also ``seedgrid``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, Settings, check_device, discord_token, load_settings, parse_listen
from bot.engine.models import Catalogue
from bot.inputs import UserInputError, choose_model, imagine_request, parse_suffixes
from bot.jobs import SEED_LIMIT, JobKind, JobRequest
from bot.logs import setup_logging
from bot.remote.connection import RedisUnavailableError

if TYPE_CHECKING:
    from bot.engine import Engine
    from bot.imaging.tiles import Tiles

log = logging.getLogger(__name__)


class CommandLineError(ValueError):
    """A command-line mistake the user can fix; printed as one line."""


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_LIMIT - 1}")
    return value


def _device(text: str) -> str:
    if (problem := check_device(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _worker_name(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        return text
    raise argparse.ArgumentTypeError("1-64 letters, digits, _ . -")


def _model_names(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise argparse.ArgumentTypeError("give model names from the config, separated by commas (e.g. sd15,flux)")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedgrid", description="A Discord bot that draws seeded 2×2 Stable Diffusion grids."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, required=True, metavar="PATH", help="the TOML config file")

    run = commands.add_parser("run", help="run the bot (the token comes from DISCORD_TOKEN)")
    with_config(run)
    worker = commands.add_parser(
        "worker", help="run a GPU worker for the redis backend (one per GPU; it connects out to Redis)"
    )
    with_config(worker)
    worker.add_argument(
        "--device", type=_device, help="the device to run on, e.g. cuda:1 (default: model.device of the config)"
    )
    worker.add_argument(
        "--name", type=_worker_name, help="a name for logs and /seedgrid status (default: host-device-pid)"
    )
    worker.add_argument(
        "--models",
        type=_model_names,
        default=(),
        metavar="NAMES",
        help="serve only these configured models, comma-separated, e.g. sd15,flux (default: every [[models]] entry)",
    )
    worker.add_argument(
        "--metrics",
        type=_listen,
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz here (default: [metrics] listen)",
    )
    check = commands.add_parser("check", help="validate the config, load the model, run one small generation")
    check.add_argument("--config", type=Path, metavar="PATH", help="the TOML config file (needed unless --ready URL)")
    check.add_argument(
        "--ready", nargs="?", const="", metavar="URL",
        help="instead, ask a running bot or worker whether it is ready: its /readyz at URL (default: the "
        "config's [metrics] listen); exit status 0 ready, 1 not ready, 2 nothing answers",
    )  # fmt: skip
    imagine = commands.add_parser("imagine", help="draw a grid without Discord, through the same executor")
    imagine.add_argument("prompt")
    with_config(imagine)
    imagine.add_argument("--seed", type=_seed, help=f"seed of tile 1 (0..{SEED_LIMIT - 1}); random if absent")
    imagine.add_argument("--steps", type=int)
    imagine.add_argument("--guidance", type=float)
    imagine.add_argument("--negative")
    imagine.add_argument("--size", help="a size name of the model (default: its first)")
    imagine.add_argument("--model", help="a model name from the config's [[models]] (default: the first)")
    imagine.add_argument(
        "--suffix",
        action="append",
        default=[],
        metavar="TEXT",
        help="refine: every tile re-uses --seed with PROMPT + TEXT (repeat 1 to 4 times)",
    )
    imagine.add_argument("--out", type=Path, required=True, metavar="DIR", help="where grid.png and tile-N.png go")

    def from_file(name: str, description: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=description)
        p.add_argument(
            "file", type=Path, metavar="FILE.png", help="a PNG seedgrid wrote (or, for reproduce, any A1111 PNG)"
        )
        with_config(p)
        p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the result's PNGs go")
        return p

    from_file("reproduce", "draw the image of FILE's recipe again (the same grid, byte for byte, on the same model)")
    upscale = from_file("upscale", "U1-U4: tile N of FILE alone, larger ([upscale] of the config) → DIR/upscale.png")
    upscale.add_argument("--tile", type=int, default=1, metavar="N", help="which tile of FILE (default 1)")
    vary = from_file("vary", "Vary: four new seeds drawn from tile N of FILE → DIR/grid.png, DIR/tile-N.png")
    vary.add_argument("--tile", type=int, default=1, metavar="N", help="which tile of FILE (default 1)")
    vary.add_argument("--strong", action="store_true", help="[vary] strong rather than subtle")
    vary.add_argument("--seed", type=_seed, help="seed of the first variation (random if absent)")
    return parser


def request_from_file(settings: Settings, args: argparse.Namespace, models: Catalogue | None = None) -> JobRequest:
    """The job ``reproduce``, ``upscale`` or ``vary`` runs for FILE's recipe (the same validation as Discord's)."""
    from bot.imaging.recipe import PARAMETERS_KEY, parse_parameters, read_recipe, read_text_chunks
    from bot.inputs import recipe_from_parameters, request_from_recipe, upscale_request, vary_request

    models = models or Catalogue.resolve(settings)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CommandLineError(f"cannot read {args.file}: {exc.strerror}") from None
    recipe = read_recipe(data)
    if recipe is None:
        parameters = read_text_chunks(data).get(PARAMETERS_KEY)
        if parameters is None or args.command != "reproduce":
            raise CommandLineError(f"{args.file} carries no seedgrid recipe")
        recipe = recipe_from_parameters(parse_parameters(parameters), models.default)
    if args.command == "reproduce":
        return request_from_recipe(recipe, models, max_side=settings.upscale.max_side)
    if not 1 <= args.tile <= len(recipe.tiles):
        raise CommandLineError(f"--tile: {args.file} has tiles 1 to {len(recipe.tiles)}")
    parent = request_from_recipe(recipe, models, max_side=settings.upscale.max_side)
    preset = choose_model(models, parent.model)
    source = recipe.tile(args.tile)
    if args.command == "upscale":
        return upscale_request(
            parent,
            source,
            preset=preset,
            settings=settings.upscale,
            parent_job=None,
            tile_index=args.tile,
            upscaler=models.upscaler,
        )
    strength = settings.vary.strong if args.strong else settings.vary.subtle
    return vary_request(
        parent, source, preset=preset, strength=strength, parent_job=None, tile_index=args.tile, seed=args.seed
    )


def request_from_args(settings: Settings, args: argparse.Namespace, models: Catalogue | None = None) -> JobRequest:
    """The job ``imagine`` runs: the same validation as /imagine, and the refine job when suffixes are given.

    ``models``: the configured models, resolved (read from their model indexes when not given).
    """
    models = models or Catalogue.resolve(settings)
    preset = choose_model(models, args.model)
    request = imagine_request(
        preset,
        prompt=args.prompt,
        negative=args.negative,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        size=args.size,
    )
    if not args.suffix:
        return request
    if args.seed is None:
        raise CommandLineError("--suffix re-runs one seed: give it with --seed")
    suffixes = parse_suffixes("\n".join(args.suffix), settings.refine)
    if len(suffixes) != len(args.suffix):
        raise CommandLineError("every --suffix must be non-empty")
    return replace(request, kind=JobKind.REFINE, suffixes=suffixes)


async def _imagine(settings: Settings, request: JobRequest, out: Path, models: Catalogue) -> int:
    from bot.engine import Engine

    engine = await Engine.open(settings, database=":memory:", scope=_cli_scope(), want_tiles=True, models=models)
    try:
        await _await_workers(engine)
        handle = await engine.submit(request)
        result = await handle.result()
    finally:
        await engine.close()
    if request.kind is JobKind.UPSCALE:  # one image: the upscale itself
        await asyncio.to_thread(_write_upscale, out, result.grid_png)
        print(f"wrote {out / 'upscale.png'} (seed {request.seed}) in {result.elapsed:.1f} s")
        return 0
    await asyncio.to_thread(_write_result, out, result.grid_png, result.images)
    seeds = ", ".join(str(t.seed) for t in result.tiles)
    print(f"wrote {out / 'grid.png'} and {len(result.images)} tiles (seeds {seeds}) in {result.elapsed:.1f} s")
    return 0


def _write_upscale(out: Path, image: bytes) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "upscale.png").write_bytes(image)


def _write_result(out: Path, grid: bytes, tiles: Tiles) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.png").write_bytes(grid)
    for index, data in enumerate(tiles.pngs(), start=1):
        (out / f"tile-{index}.png").write_bytes(data)


async def _check(settings: Settings) -> int:
    from bot.engine import Engine

    engine = await Engine.open(settings, database=":memory:", scope=_cli_scope())
    try:
        await _await_workers(engine)
        info = engine.info
        if info is not None:
            print(f"model {info.model} on {info.device} ({info.dtype}, {info.scheduler})")
        preset = engine.models.default
        smallest = min(preset.sizes, key=lambda s: s.width * s.height)
        steps = preset.min_steps
        request = imagine_request(preset, prompt="a lighthouse at dusk", seed=0, steps=steps, size=smallest.name)
        result = await (await engine.submit(request)).result()
    finally:
        await engine.close()
    print(
        f"ok: one {smallest.width}×{smallest.height} grid of {preset.label} in {steps} steps"
        f" took {result.elapsed:.1f} s"
    )
    return 0


def _check_ready(url: str, config: Path | None) -> int:
    """``check --ready [URL]``: 0 when the running bot (or worker) says it is ready, 1 when not."""
    from bot.monitoring.client import UnreachableError, ask, local_url, readyz_url

    if not url:
        if config is None:
            raise CommandLineError("--ready needs a URL, or --config PATH to read [metrics] listen from")
        listen = load_settings(config).metrics.resolved_listen()
        if not listen:
            raise CommandLineError("the config has no [metrics] listen (and SEEDGRID_METRICS_LISTEN is not set)")
        url = local_url(listen)
    try:
        answer = ask(readyz_url(url))
    except (ValueError, UnreachableError) as exc:
        raise CommandLineError(str(exc)) from None
    print(f"{'ready' if answer.ready else 'not ready'}: {answer.describe()}")
    return 0 if answer.ready else 1


WORKER_WAIT = 30.0
"""Seconds ``check`` and ``imagine`` wait for a GPU worker to show up when the backend is redis."""


def _cli_scope() -> str:
    return f"cli-{os.getpid()}"


async def _await_workers(engine: Engine) -> None:
    """With the redis backend: wait until a worker is alive, or stop with a clear error."""
    try:
        workers = await engine.wait_for_workers(WORKER_WAIT)
    except TimeoutError:
        raise CommandLineError(
            f"no GPU worker has been seen in Redis for {WORKER_WAIT:.0f} s; "
            "start one with: python -m bot worker --config PATH"
        ) from None
    if workers is not None:
        names = ", ".join(w.name for w in workers)
        print(f"{len(workers)} worker(s) in Redis: {names}")


async def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from bot.remote.worker import run_worker

    listen = args.metrics or settings.metrics.resolved_listen()
    known = [entry.name for entry in settings.model_entries]
    unknown = [name for name in args.models if name not in known]
    if unknown:
        raise CommandLineError(
            f"--models: the config has no model {', '.join(map(repr, unknown))}; its models are {', '.join(known)}"
        )
    return await run_worker(settings, device=args.device, name=args.name, metrics_listen=listen, models=args.models)


async def _run(settings: Settings, token: str) -> int:
    import discord  # only the run command needs the Discord side

    from cogs.client import SeedgridBot

    async with SeedgridBot(settings) as client:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _request_stop, client, signum)
        try:
            await client.start(token)
        except discord.LoginFailure:
            print(
                "seedgrid: error: Discord refused the bot token in DISCORD_TOKEN; "
                "reset it in the Developer Portal (Bot tab) and set it again",
                file=sys.stderr,
            )
            return 2
        except discord.PrivilegedIntentsRequired:
            print("seedgrid: error: Discord refused the gateway intents", file=sys.stderr)
            return 2
    return 0


def _request_stop(client: Any, signum: int) -> None:
    log.info("received %s: finishing the running job, then stopping", signal.Signals(signum).name)
    asyncio.get_running_loop().create_task(client.close())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check" and args.ready is not None:
            return _check_ready(args.ready, args.config)
        if args.config is None:
            raise CommandLineError("--config PATH is required")
        settings = load_settings(args.config)
        token = discord_token() if args.command == "run" else None
        setup_logging(settings.logging.level, secrets=[token] if token else [], format=settings.logging.format)
        if args.command == "run":
            assert token is not None
            return asyncio.run(_run(settings, token))
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "worker":
            return asyncio.run(_worker(settings, args))
        models = Catalogue.resolve(settings)  # read once: the request's checks and the engine share it
        if args.command in ("reproduce", "upscale", "vary"):
            request = request_from_file(settings, args, models)
        else:
            request = request_from_args(settings, args, models)
        return asyncio.run(_imagine(settings, request, args.out, models))
    except (ConfigError, UserInputError, CommandLineError, RedisUnavailableError) as exc:
        print(f"seedgrid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
