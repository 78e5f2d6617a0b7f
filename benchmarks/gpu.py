"""GPU benchmark: Stable Diffusion 1.5 at full size, plain diffusers fp16 against seedgrid's own pipeline path.

    python -m benchmarks.gpu                                   # needs a CUDA GPU; about 2-3 minutes on an H100
    python -m benchmarks.gpu --seedgrid-options '{"dtype": "bfloat16"}'
    python -m benchmarks.gpu --config config.toml              # seedgrid's [model] section from a config file
    python -m benchmarks.gpu --tiny                            # CPU smoke test of this code path (tiny model)

**Nothing is downloaded.** The model is Stable Diffusion 1.5's published architecture with
random weights, built here and written with ``save_pretrained`` to a temporary folder:

* ``UNet2DConditionModel`` with SD 1.5's config: ``block_out_channels`` (320, 640, 1280, 1280),
  ``layers_per_block`` 2, ``cross_attention_dim`` 768, ``attention_head_dim`` 8, ``sample_size``
  64, down blocks 3 × ``CrossAttnDownBlock2D`` + ``DownBlock2D``, up blocks ``UpBlock2D`` + 3 ×
  ``CrossAttnUpBlock2D`` (860 M parameters);
* ``AutoencoderKL`` with SD's config: ``block_out_channels`` (128, 256, 512, 512), 4 latent
  channels, ``layers_per_block`` 2, ``sample_size`` 512;
* ``CLIPTextModel`` with ViT-L/14's text config: hidden 768, 12 layers, 12 heads, intermediate
  3072, 77 positions, vocabulary 49408; the tokenizer is built locally the way
  ``tests/tiny_model.py`` does (a byte-level vocabulary: only token ids matter here);
* SD 1.5's ``PNDMScheduler`` config; no safety checker on either side.

Random weights compute exactly as many FLOPs as trained ones, so the timings are those of SD
1.5 (the images are noise, and fp16 may overflow to NaN: harmless for timing).

**What is timed**, side by side in the same process, interleaved (A B, B A, ...), after warm-up:
one job of 4 images at 512², 30 steps, guidance 7.5 (so the UNet sees a batch of 8):

1. *plain diffusers fp16*, the documented baseline: ``pipe.to("cuda", torch.float16)``, one
   ``torch.Generator("cuda")`` per image, ``pipe(prompt, num_images_per_prompt=4, ...)``;
2. *seedgrid*: the same saved folder loaded by seedgrid's own loader,
   ``bot.diffusion.pipeline.Pipeline.load(ModelSettings(...))``, and run by ``Pipeline.generate`` with
   one tile per image (CPU generators, progress callback), so every setting seedgrid applies
   at load time applies here. Today that path is plain diffusers as well; when speed options
   (SDPA, channels_last, torch.compile, fused QKV, bf16, ...) become fields of
   ``bot.config.ModelSettings``, pass them with ``--seedgrid-options`` (JSON) or ``--config``
   (a seedgrid config file's ``[model]`` section): they go through the bot's own config
   validation to the loader, and the report lists every such field and whether it was on.
   Use ``--warmup`` to give torch.compile its compile runs.

Reported: seconds per job, images per second, the ratio plain / seedgrid, peak VRAM per job
(``torch.cuda.max_memory_allocated`` during the job, plus the weights), and the fraction of the
physical floor: the job's FLOPs (≈ 203 TFLOP for SD 1.5, 4 × 512², 30 steps with guidance:
4 × (2 × 30 × 0.80 + 2.5) TFLOP, UNet + VAE decode; or counted with ``--count-flops``) divided by
this GPU's bf16 matmul rate, measured in the same run with a large ``torch.matmul``.

Without a CUDA GPU it exits with a message (status 2), unless ``--tiny``: then the test suite's
tiny model runs the same code on the CPU in float32 (figures meaningless, code path exercised).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import inspect
import json
import math
import sys
import tempfile
import time
import tomllib
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks._common import describe_machine, machine, median, ratio

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}
VIT_L14_TEXT: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
UNET_TFLOP_PER_IMAGE_STEP = 0.80
VAE_TFLOP_PER_IMAGE = 2.5
BASE_FIELDS = frozenset({"id", "device", "dtype", "scheduler", "cpu_offload"})
"""``ModelSettings`` fields that are not speed options."""
IMAGES = 4
PROMPT = "a lighthouse at dusk, oil painting"
SEED = 1234


# --- the model ---------------------------------------------------------------------------------


def build_sd15(folder: Path, device: str) -> Path:
    """SD 1.5's architecture with random weights (made on ``device``: seconds on a GPU), saved in fp16."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tests.tiny_model import MAX_TOKENS, SD15_SCHEDULER, write_tokenizer_files

    tokenizer = CLIPTokenizer.from_pretrained(
        write_tokenizer_files(folder / "tokenizer-source"), model_max_length=MAX_TOKENS
    )
    text_config = CLIPTextConfig(
        **VIT_L14_TEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(text_config)
    pipe: Any = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(dtype=torch.float16)
    out = folder / "sd15-random"
    pipe.save_pretrained(out)
    del pipe, unet, vae, text_encoder
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def build_tiny(folder: Path) -> Path:
    from tests.tiny_model import build_tiny_pipeline

    return build_tiny_pipeline(folder / "tiny")


# --- seedgrid's settings -----------------------------------------------------------------------


def _toml_value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are a subset of TOML's
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise SystemExit(f"benchmarks.gpu: error: model.{key}: cannot pass a {type(value).__name__} as a setting")


def model_settings(folder: Path, table: Mapping[str, Any], *, device: str, dtype: str) -> Any:
    """``[model]`` through seedgrid's own config loader: unknown keys and bad values stop here, by name."""
    from bot.config import ConfigError, parse_settings

    merged = {"device": device, "dtype": dtype, **table, "id": str(folder)}
    text = "[model]\n" + "".join(f"{key} = {_toml_value(value, key)}\n" for key, value in merged.items())
    try:
        return parse_settings(text, source="--seedgrid-options").model
    except ConfigError as exc:
        raise SystemExit(f"benchmarks.gpu: error: {exc}") from None


def speed_options(settings: Any) -> dict[str, dict[str, Any]]:
    """Every ``ModelSettings`` field beyond the basics: its value, its default and whether it is on."""
    from bot.config import ModelSettings

    defaults = ModelSettings()
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(ModelSettings):
        if f.name in BASE_FIELDS:
            continue
        value, default = getattr(settings, f.name), getattr(defaults, f.name)
        out[f.name] = {"value": value, "default": default, "changed": value != default}
    return out


def describe_options(speed: Mapping[str, Mapping[str, Any]]) -> str:
    """``attention='sdpa', channels_last=on, compile=off*`` (* = changed from the default)."""
    if not speed:
        return "none yet (bot.config.ModelSettings has only the basic fields)"
    parts = []
    for name, option in speed.items():
        value = option["value"]
        shown = ("on" if value else "off") if isinstance(value, bool) else repr(value)
        parts.append(f"{name}={shown}{'*' if option['changed'] else ''}")
    return ", ".join(parts) + " (* = changed from the default)"


def load_seedgrid(settings: Any) -> Any:
    from bot.diffusion.pipeline import Pipeline

    if "safety_checker" in inspect.signature(Pipeline.load).parameters:
        return Pipeline.load(settings, safety_checker=False)
    return Pipeline.load(settings)


# --- timing ------------------------------------------------------------------------------------


class Device:
    def __init__(self, name: str) -> None:
        import torch

        self.name = name
        self.cuda = name.startswith("cuda")
        self._torch = torch

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def allocated(self) -> int:
        return int(self._torch.cuda.memory_allocated()) if self.cuda else 0

    def reset_peak(self) -> None:
        if self.cuda:
            self._torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int:
        return int(self._torch.cuda.max_memory_allocated()) if self.cuda else 0

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self._torch.cuda.empty_cache()


def matmul_rate(device: Device, *, tiny: bool) -> tuple[float, str]:
    """FLOP/s of a large square matmul: bf16 on the GPU (float32 on the CPU for --tiny)."""
    import torch

    dtype = torch.float32 if tiny else torch.bfloat16
    n, iterations = (512, 10) if tiny else (8192, 100)
    a = torch.randn(n, n, device=device.name, dtype=dtype)
    b = torch.randn(n, n, device=device.name, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    device.sync()
    start = time.perf_counter()
    for _ in range(iterations):
        torch.matmul(a, b)
    device.sync()
    seconds = time.perf_counter() - start
    del a, b
    device.free()
    return 2 * n**3 * iterations / seconds, f"{str(dtype).removeprefix('torch.')} {n}×{n}"


def sd15_flops(steps: int, size: int, *, guidance: bool = True) -> float:
    """≈ FLOPs of one job (``IMAGES`` images), from the published per-image figures (scaled by area)."""
    per_image = (2 if guidance else 1) * steps * UNET_TFLOP_PER_IMAGE_STEP + VAE_TFLOP_PER_IMAGE
    return IMAGES * per_image * 1e12 * (size / 512) ** 2


def _flop(value: float) -> str:
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} FLOP"


def count_flops(job: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        job()
    return float(counter.get_total_flops())


@dataclasses.dataclass
class Contender:
    """One way of running the job, and what it measured."""

    name: str
    job: Callable[[], object]
    weights: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)
    peaks: list[int] = dataclasses.field(default_factory=list)

    def run(self, device: Device) -> None:
        device.sync()
        device.free()
        device.reset_peak()
        before = device.allocated()
        start = time.perf_counter()
        self.job()
        device.sync()
        self.seconds.append(time.perf_counter() - start)
        self.peaks.append(device.peak() - before)


# --- the benchmark -----------------------------------------------------------------------------


def contenders(folder: Path, device: Device, dtype: Any, settings: Any, *, steps: int, size: int) -> list[Contender]:
    """The same saved model twice: plain diffusers as documented, and seedgrid's loader and call."""
    import torch
    from diffusers import StableDiffusionPipeline

    from bot.jobs import GenParams, Tile

    # 1. plain diffusers, as the docs show it
    before = device.allocated()
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    pipe.to(device.name, dtype)
    pipe.set_progress_bar_config(disable=True)
    plain_weights = device.allocated() - before

    def plain() -> object:
        generators = [torch.Generator(device.name).manual_seed(SEED + i) for i in range(IMAGES)]
        return pipe(
            PROMPT,
            num_images_per_prompt=IMAGES,
            generator=generators,
            num_inference_steps=steps,
            guidance_scale=7.5,
            height=size,
            width=size,
        )

    # 2. seedgrid: its own loader (every ModelSettings field applies) and its own batched call
    before = device.allocated()
    pipeline = load_seedgrid(settings)
    seedgrid_weights = device.allocated() - before
    tiles = tuple(Tile(PROMPT, SEED + i) for i in range(IMAGES))
    params = GenParams(tiles=tiles, negative="", steps=steps, guidance=7.5, width=size, height=size)

    def seedgrid() -> object:
        return pipeline.generate(params)

    return [
        Contender("plain diffusers", plain, plain_weights),
        Contender("seedgrid Pipeline", seedgrid, seedgrid_weights),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description="SD 1.5 (random weights, full size): plain diffusers fp16 vs seedgrid's Pipeline, on a GPU.",
    )
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test with the tiny test model")
    parser.add_argument(
        "--device",
        default="cuda",
        help="cuda (default) or cpu: the full-size model on the CPU, float32, only to smoke-test the build (slow)",
    )
    parser.add_argument("--steps", type=int, help="denoising steps (default 30; 4 with --tiny)")
    parser.add_argument("--size", type=int, help="image side (default 512; 64 with --tiny)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per path (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per path first (raise for torch.compile)")
    parser.add_argument(
        "--seedgrid-options",
        default="{}",
        metavar="JSON",
        help='extra [model] settings for seedgrid\'s loader, e.g. \'{"dtype": "bfloat16"}\'',
    )
    parser.add_argument("--config", type=Path, help="a seedgrid config file: its [model] section is used")
    parser.add_argument("--count-flops", action="store_true", help="count the job's FLOPs instead of the SD 1.5 figure")
    parser.add_argument("--out", type=Path, help="write the figures as JSON (default: benchmarks/results-gpu.json)")
    return parser.parse_args(argv)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if args.config is not None:
        with args.config.open("rb") as f:
            table.update(tomllib.load(f).get("model", {}))
        table.pop("id", None)  # the model is the one built here
    try:
        extra = json.loads(args.seedgrid_options)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"benchmarks.gpu: error: --seedgrid-options is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise SystemExit("benchmarks.gpu: error: --seedgrid-options must be a JSON object")
    table.update(extra)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not args.tiny and args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"benchmarks.gpu: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). "
            "This benchmark times SD 1.5 at full size on a GPU; `python -m benchmarks.gpu --tiny` runs the same "
            "code on the CPU with the tiny test model, as a smoke test.",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore")  # random fp16 weights: NaN images, "invalid value in cast"; deprecations
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    steps = args.steps or (4 if args.tiny else 30)
    size = args.size or (64 if args.tiny else 512)
    device = Device("cpu" if args.tiny else args.device)
    dtype = torch.float16 if device.cuda else torch.float32
    options = _options(args)
    model_settings(Path("built-here"), options, device=device.name, dtype=str(dtype).removeprefix("torch."))
    info = machine()
    if device.cuda:
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    print(f"machine: {describe_machine(info)}" + (f"; GPU {info['gpu']}" if device.cuda else ""), flush=True)

    rate, rate_what = matmul_rate(device, tiny=not device.cuda)
    print(f"matmul ({rate_what}): {_flop(rate)}/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="seedgrid-gpu-") as tmp:
        started = time.perf_counter()
        folder = build_tiny(Path(tmp)) if args.tiny else build_sd15(Path(tmp), device.name)
        what = "the tiny model" if args.tiny else "SD 1.5 (random weights)"
        print(f"built {what} in {time.perf_counter() - started:.0f} s", flush=True)

        settings = model_settings(folder, options, device=device.name, dtype=str(dtype).removeprefix("torch."))
        paths = contenders(folder, device, dtype, settings, steps=steps, size=size)
        for path in paths:
            for _ in range(args.warmup):
                path.job()
        for run in range(args.runs):
            for path in paths if run % 2 == 0 else reversed(paths):
                path.run(device)
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{p.name} {p.seconds[-1]:.3f} s" for p in paths))

        if args.tiny or args.count_flops or not device.cuda:
            flops, flops_how = count_flops(paths[0].job), "counted (FlopCounterMode, one plain job)"
        else:
            flops, flops_how = sd15_flops(steps, size), "SD 1.5 figures: 0.80 TFLOP/image/step UNet, 2.5 VAE"

    basics = {name: getattr(settings, name) for name in sorted(BASE_FIELDS) if name != "id"}
    speed = speed_options(settings)
    report = _report(paths, rate, rate_what, flops, flops_how, speed, basics, info, args, steps, size, dtype)
    out = args.out or (Path(__file__).with_name("results-gpu.json") if device.cuda else None)
    if out is not None:
        out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _report(
    paths: list[Contender],
    rate: float,
    rate_what: str,
    flops: float,
    flops_how: str,
    speed: dict[str, dict[str, Any]],
    basics: dict[str, Any],
    info: dict[str, Any],
    args: argparse.Namespace,
    steps: int,
    size: int,
    dtype: Any,
) -> dict[str, Any]:
    floor = flops / rate
    print()
    print(f"job: {IMAGES} images, {size}², {steps} steps, guidance 7.5, {str(dtype).removeprefix('torch.')}")
    print("seedgrid settings: " + ", ".join(f"{k}={v!r}" for k, v in basics.items()))
    print(f"seedgrid speed options: {describe_options(speed)}")
    print(f"physical floor: {_flop(flops)} ({flops_how}) / {_flop(rate)}/s = {floor:.4f} s")
    header = f"{'path':<20} {'s/job':>8} {'images/s':>9} {'peak VRAM':>10} {'of floor':>9}"
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {}
    for p in paths:
        seconds = median(p.seconds)
        vram = (p.weights + max(p.peaks)) / 2**30 if p.peaks else math.nan
        figures[p.name] = {
            "seconds_per_job": seconds,
            "runs": p.seconds,
            "images_per_second": IMAGES / seconds,
            "peak_vram_gib": vram,
            "weights_gib": p.weights / 2**30,
            "fraction_of_floor": floor / seconds,
        }
        vram_text = f"{vram:.2f} GiB" if p.weights else "n/a"
        print(f"{p.name:<20} {seconds:>8.3f} {IMAGES / seconds:>9.2f} {vram_text:>10} {floor / seconds:>8.1%}")
    plain, seed = (median(p.seconds) for p in paths)
    print(f"\nseedgrid vs plain: {ratio(plain, seed)} (plain s/job ÷ seedgrid s/job; > 1 = seedgrid faster)")
    return {
        "machine": info,
        "tiny": args.tiny,
        "job": {"images": IMAGES, "size": size, "steps": steps, "guidance": 7.5, "dtype": str(dtype)},
        "matmul": {"flops_per_second": rate, "what": rate_what},
        "job_flops": flops,
        "job_flops_how": flops_how,
        "floor_seconds": floor,
        "seedgrid_settings": basics,
        "speed_options": speed,
        "paths": figures,
        "seedgrid_speedup": plain / seed,
    }


if __name__ == "__main__":
    sys.exit(main())
