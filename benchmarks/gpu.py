"""GPU benchmark: Stable Diffusion 1.5 at full size, plain diffusers fp16 against seedgrid's variants, one job.

    python -m benchmarks.gpu --out /tmp/gpu.json                # a CUDA GPU; SD 1.5 built from its config
    python -m benchmarks.gpu --out /tmp/gpu.json --variants plain,eager,compiled
    python -m benchmarks.gpu --out /tmp/gpu.json --seedgrid-options '{"compile_mode": "default"}'
    python -m benchmarks.gpu --out /tmp/tiny.json --tiny        # the same code on the CPU, tiny model (~1 min)

**Nothing is downloaded.** The model is Stable Diffusion 1.5's published architecture (UNet 860 M
parameters, the SD VAE, a ViT-L/14 text encoder, SD 1.5's PNDM scheduler config) with random
weights, built on the device and saved with ``save_pretrained`` to a temporary folder; random
weights cost exactly the FLOPs of trained ones. No safety checker on any side.

**The job** (the same for every variant): 4 images, 512², 30 steps, guidance 7.5 (so the denoiser
sees a batch of 8), one CPU ``torch.Generator`` per image seeded ``SEED + i`` (seedgrid's way; the
same noise for every variant, so the images can be compared).

**The variants**, all loaded from the same folder and timed side by side, interleaved:

* ``plain``: plain diffusers fp16 as documented: ``StableDiffusionPipeline.from_pretrained`` then
  ``.to("cuda")``, one call with the 4 prompts and the 4 generators;
* ``eager``: seedgrid's loader and call (``Pipeline.load`` + ``Pipeline.generate``) with its speed
  options, without compile;
* ``compiled``: the same with ``compile = true`` (static shapes, warmed up for the job's shapes);
* ``fp8``: compiled + ``quantize = "fp8"``: on hardware that cannot run it, the row says why.

**Per variant**: the options applied (``PipelineInfo.speed``), load and compile seconds (each
compiled shape's too), dynamo's graphs and graph breaks at load and any graph made during the timed
runs (a recompile in service), ``--runs`` (≥ 5) timed runs as min / median / max, images/s, peak
allocated and reserved memory, a time split from one instrumented run (denoiser per call, VAE
decode, image conversion, the rest), the FLOPs of the job counted with ``FlopCounterMode`` on the
plain variant's real calls (every denoiser call: PNDM makes 31 for 30 steps), the share of the
bf16 (and FP8) matmul ceiling measured in the same run, each tile's difference to plain fp16, and
batch ≡ solo (tile 1 of the job against the same tile drawn alone).

The JSON goes to ``--out`` and is rewritten after every phase, so a run cut short still leaves
what it measured. ``--budget`` (seconds) skips what would not fit. Warnings are not silenced (a
graph break is visible). Without a CUDA GPU it exits with status 2, unless ``--tiny``: the test
suite's tiny model in float32 on the CPU, compile with dynamo's capture-only ``eager`` backend
(figures meaningless, every code path exercised).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks._common import describe_machine, machine, median

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
VARIANTS = ("plain", "eager", "compiled", "fp8")
IMAGES = 4
GUIDANCE = 7.5
PROMPT = "a lighthouse at dusk, oil painting"
SEED = 1234
COMPILE_RESERVE_S = 150.0
"""Seconds a compiled variant is assumed to need at least (load and warm-up); with less budget left it is skipped."""


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
    raise SystemExit(f"benchmarks.gpu: error: model.{key}: cannot pass a {type(value).__name__} as a setting")


def model_settings(folder: Path, table: Mapping[str, Any]) -> Any:
    """``[model]`` through seedgrid's own config loader: unknown keys and bad values stop here, by name."""
    from bot.config import ConfigError, parse_settings

    merged = {**table, "id": str(folder)}
    text = "[model]\n" + "".join(
        f"{key} = {_toml_value(value, key)}\n" for key, value in merged.items() if value is not None
    )
    try:
        return parse_settings(text, source="--seedgrid-options").model
    except ConfigError as exc:
        raise SystemExit(f"benchmarks.gpu: error: {exc}") from None


def variant_options(name: str, base: Mapping[str, Any], *, tiny: bool) -> dict[str, Any]:
    options = dict(base)
    if name in ("compiled", "fp8"):
        options["compile"] = True
        if tiny:
            options.setdefault("compile_backend", "eager")  # inductor: minutes of C++ on a small CPU
    else:
        options["compile"] = False
    options["quantize"] = "fp8" if name == "fp8" else ""
    if name == "fp8" and not tiny:
        options["dtype"] = "bfloat16"  # torchao's per-row float8 scales take bfloat16 weights
    return options


# --- measuring ---------------------------------------------------------------------------------


class Device:
    def __init__(self, name: str) -> None:
        import torch

        self.name = name
        self.cuda = name.startswith("cuda")
        self._torch = torch

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def reset_peak(self) -> None:
        if self.cuda:
            self._torch.cuda.reset_peak_memory_stats()

    def allocated(self) -> int:
        return int(self._torch.cuda.memory_allocated()) if self.cuda else 0

    def peaks(self) -> tuple[int, int]:
        if not self.cuda:
            return 0, 0
        return int(self._torch.cuda.max_memory_allocated()), int(self._torch.cuda.max_memory_reserved())

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self._torch.cuda.empty_cache()


def _timed(device: Device, fn: Callable[..., object], args: tuple[Any, ...], iterations: int, **kw: Any) -> float:
    for _ in range(3):
        fn(*args, **kw)
    device.sync()
    start = time.perf_counter()
    for _ in range(iterations):
        fn(*args, **kw)
    device.sync()
    return (time.perf_counter() - start) / iterations


def matmul_ceilings(device: Device, *, tiny: bool) -> dict[str, Any]:
    """FLOP/s of a large square matmul: bf16 (float32 on the CPU), and FP8 with per-row scales where it runs."""
    import torch

    n, iterations = (256, 10) if tiny else (8192, 50)
    dtype = torch.float32 if tiny else torch.bfloat16
    a = torch.randn(n, n, device=device.name, dtype=dtype)
    b = torch.randn(n, n, device=device.name, dtype=dtype)
    seconds = _timed(device, torch.matmul, (a, b), iterations)
    out: dict[str, Any] = {"bf16": {"flops_per_second": 2 * n**3 / seconds, "what": f"{dtype} {n}×{n}×{n}"}}
    if device.cuda:
        try:
            a8 = a.to(torch.float8_e4m3fn)
            b8 = b.to(torch.float8_e4m3fn).t().contiguous().t()  # column-major, as _scaled_mm wants
            scale_a = torch.ones(n, 1, device=device.name)
            scale_b = torch.ones(1, n, device=device.name)
            seconds = _timed(
                device,
                torch._scaled_mm,
                (a8, b8),
                iterations,
                scale_a=scale_a,
                scale_b=scale_b,
                out_dtype=torch.bfloat16,
            )
            out["fp8"] = {"flops_per_second": 2 * n**3 / seconds, "what": f"float8_e4m3fn {n}³, per-row scales"}
        except Exception as exc:  # below compute capability 8.9
            out["fp8"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    del a, b
    device.free()
    return out


class Split:
    """One instrumented run: each denoiser call, the VAE decode and the image conversion, timed."""

    def __init__(self, pipe: Any, denoiser: str, device: Device) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.pipe = pipe
        self.module = getattr(pipe, denoiser)
        self.spans: dict[str, list[tuple[Any, Any]]] = {"denoiser": [], "vae_decode": [], "image_conversion": []}
        self.nonfinite = False
        self._handles: list[Any] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def _mark(self) -> Any:
        if self.device.cuda:
            event = self._torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _wrap(self, owner: Any, name: str, span: str, check: bool = False) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = self._mark()
            out = original(*args, **kwargs)
            self.spans[span].append((start, self._mark()))
            sample = getattr(out, "sample", out[0] if isinstance(out, tuple) else None)
            if check and isinstance(sample, self._torch.Tensor):
                self.nonfinite = self.nonfinite or not bool(self._torch.isfinite(sample).all())
            return out

        self._saved.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, wrapped)

    def __enter__(self) -> Split:
        starts: list[Any] = []
        self._handles.append(self.module.register_forward_pre_hook(lambda *_: starts.append(self._mark())))
        self._handles.append(
            self.module.register_forward_hook(lambda *_: self.spans["denoiser"].append((starts.pop(), self._mark())))
        )
        self._wrap(self.pipe.vae, "decode", "vae_decode", check=True)
        self._wrap(self.pipe.image_processor, "postprocess", "image_conversion")
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        for owner, name, previous in self._saved:
            if previous is None:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)

    def seconds(self) -> dict[str, Any]:
        self.device.sync()

        def span(a: Any, b: Any) -> float:
            return a.elapsed_time(b) / 1000 if self.device.cuda else b - a

        out: dict[str, Any] = {}
        for name, spans in self.spans.items():
            total = sum(span(a, b) for a, b in spans)
            out[name] = {"calls": len(spans), "seconds": total, "per_call": total / len(spans) if spans else None}
        return out


@dataclasses.dataclass
class Variant:
    name: str
    job: Callable[[int], list[Any]]  # tiles → images (tile i: seed SEED + i)
    pipe: Any
    denoiser: str
    report: dict[str, Any]
    seconds: list[float] = dataclasses.field(default_factory=list)
    images: list[Any] = dataclasses.field(default_factory=list)


def _pixels(images: list[Any]) -> Any:
    import numpy as np

    return np.stack([np.asarray(im, dtype=np.int16) for im in images])


def _difference(a: Any, b: Any) -> dict[str, float]:
    import numpy as np

    diff = np.abs(a - b)
    return {"max": float(diff.max()), "mean": float(diff.mean())}


def load_plain(folder: Path, device: Device, dtype: Any, steps: int, size: int) -> Variant:
    import torch
    from diffusers import StableDiffusionPipeline

    from bot.diffusion.devices import dtype_kwarg

    pipe = StableDiffusionPipeline.from_pretrained(folder, **dtype_kwarg(dtype))
    pipe.to(device.name)
    pipe.set_progress_bar_config(disable=True)

    def job(tiles: int) -> list[Any]:
        generators = [torch.Generator("cpu").manual_seed(SEED + i) for i in range(tiles)]
        out = pipe(
            [PROMPT] * tiles,
            generator=generators,
            num_inference_steps=steps,
            guidance_scale=GUIDANCE,
            height=size,
            width=size,
        )
        return list(out.images)

    return Variant("plain", job, pipe, "unet", {"options": ["diffusers defaults"]})


def load_seedgrid(name: str, settings: Any, steps: int, size: int) -> Variant:
    from bot.diffusion.compiled import compiled_parts
    from bot.diffusion.pipeline import Pipeline
    from bot.jobs import GenParams, Tile

    pipeline = Pipeline.load(settings, safety_checker=False)

    def job(tiles: int) -> list[Any]:
        params = GenParams(
            tiles=tuple(Tile(PROMPT, SEED + i) for i in range(tiles)),
            negative="",
            steps=steps,
            guidance=GUIDANCE,
            width=size,
            height=size,
        )
        return pipeline.generate(params).images

    report: dict[str, Any] = {"options": list(pipeline.info.speed)}
    variant = Variant(name, job, pipeline._pipe, pipeline.family.denoiser, report)
    if compiled_parts(pipeline._pipe):
        report["compile_seconds"] = pipeline.warm_up([(size, size)], steps=2, batches=(IMAGES, 1), guidance_off=False)
        report["compiled_shapes"] = {
            part.label: part.compile_seconds for part in compiled_parts(pipeline._pipe)
        }  # seconds of each shape's first call
    return variant


# --- the benchmark -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description="SD 1.5 (random weights, full size) on a GPU: plain diffusers fp16 against seedgrid's variants.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write (rewritten after each phase)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model on the CPU (about a minute)")
    parser.add_argument("--steps", type=int, help="denoising steps (default 30; 4 with --tiny)")
    parser.add_argument("--size", type=int, help="image side (default 512; 64 with --tiny)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant, interleaved (default 5, min 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per variant after loading (default 3)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"some of {', '.join(VARIANTS)}, loaded in that order"
    )
    parser.add_argument("--budget", type=float, default=0.0, help="seconds for the whole run; 0: no limit")
    parser.add_argument(
        "--seedgrid-options",
        default="{}",
        metavar="JSON",
        help='[model] settings for every seedgrid variant, e.g. \'{"compile_mode": "default"}\'',
    )
    parser.add_argument("--config", type=Path, help="a seedgrid config file: its [model] section is used")
    args = parser.parse_args(argv)
    wanted = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not wanted or any(v not in VARIANTS for v in wanted):
        parser.error(f"--variants: expected some of {', '.join(VARIANTS)}, got {args.variants!r}")
    if args.runs < 5:
        parser.error("--runs: at least 5 (min / median / max need a spread)")
    args.variants = list(dict.fromkeys(wanted))  # in the order given: a tight budget skips the last ones
    return args


def _options(args: argparse.Namespace) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if args.config is not None:
        with args.config.open("rb") as f:
            table.update(tomllib.load(f).get("model", {}))
    try:
        extra = json.loads(args.seedgrid_options)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"benchmarks.gpu: error: --seedgrid-options is not JSON: {exc}") from None
    if not isinstance(extra, dict):
        raise SystemExit("benchmarks.gpu: error: --seedgrid-options must be a JSON object")
    table.update(extra)
    for key in ("id", "models", "memory_budget"):
        table.pop(key, None)  # the model is the one built here
    return table


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print(
            f"benchmarks.gpu: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). "
            "`python -m benchmarks.gpu --tiny --out FILE` runs the same code on the CPU with the tiny test model.",
            file=sys.stderr,
        )
        return 2
    try:
        import diffusers
    except ImportError:
        print(
            "benchmarks.gpu: diffusers is not installed here; on a lent machine carry its wheel "
            "(benchmarks/README.md, 'On a lent GPU machine')",
            file=sys.stderr,
        )
        return 2
    from bot.diffusion.compiled import compile_counters

    steps = args.steps or (4 if args.tiny else 30)
    size = args.size or (64 if args.tiny else 512)
    device = Device("cpu" if args.tiny else "cuda")
    dtype = torch.float32 if args.tiny else torch.float16
    base = {"device": device.name, "dtype": str(dtype).removeprefix("torch."), **_options(args)}
    for name in args.variants:  # bad options stop here, before minutes of work
        if name != "plain":
            model_settings(Path("built-here"), variant_options(name, base, tiny=args.tiny))

    info = machine()
    info["diffusers"] = diffusers.__version__
    if device.cuda:
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
        info["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    print(f"machine: {describe_machine(info)}" + (f"; GPU {info['gpu']}" if device.cuda else ""), flush=True)
    report: dict[str, Any] = {
        "machine": info,
        "tiny": args.tiny,
        "job": {"images": IMAGES, "size": size, "steps": steps, "guidance": GUIDANCE, "dtype": str(dtype)},
        "seedgrid_options": base,
        "variants": {},
    }

    def save() -> None:
        report["elapsed_seconds"] = time.perf_counter() - started
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")

    def left() -> float:
        return args.budget - (time.perf_counter() - started) if args.budget else float("inf")

    report["matmul"] = matmul_ceilings(device, tiny=args.tiny)
    for kind, figures in report["matmul"].items():
        rate = figures.get("flops_per_second")
        print(f"matmul {kind}: " + (f"{rate / 1e12:.1f} TFLOP/s ({figures['what']})" if rate else figures["error"]))
    save()

    with tempfile.TemporaryDirectory(prefix="seedgrid-gpu-") as tmp:
        t = time.perf_counter()
        folder = build_tiny(Path(tmp)) if args.tiny else build_sd15(Path(tmp), device.name)
        report["build_seconds"] = time.perf_counter() - t
        print(
            f"built {'the tiny model' if args.tiny else 'SD 1.5 (random weights)'} in {report['build_seconds']:.0f} s"
        )

        variants = load_variants(args, folder, device, dtype, base, steps, size, report, save, left)
        if not variants:
            return 1

        # 2. timed runs, interleaved (each round starts one variant later), nothing freed in between
        device.free()
        before = compile_counters()
        for run in range(args.runs):
            if run >= 5 and left() < 30:
                break
            shift = run % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                device.sync()
                device.reset_peak()
                t = time.perf_counter()
                variant.job(IMAGES)
                device.sync()
                variant.seconds.append(time.perf_counter() - t)
                allocated, reserved = device.peaks()
                variant.report["peak_allocated_bytes"] = max(variant.report.get("peak_allocated_bytes", 0), allocated)
                variant.report["peak_reserved_bytes"] = max(variant.report.get("peak_reserved_bytes", 0), reserved)
                variant.report["runs"] = variant.seconds
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{v.name} {v.seconds[-1]:.3f} s" for v in variants))
            save()
        report["graphs_during_timed_runs"] = compile_counters()["graphs"] - before["graphs"]

        # 3. one instrumented run each: the time split, the images, batch ≡ solo
        for variant in variants:
            with Split(variant.pipe, variant.denoiser, device) as split:
                t = time.perf_counter()
                variant.images = variant.job(IMAGES)
                device.sync()
                total = time.perf_counter() - t
            parts = split.seconds()
            parts["rest"] = {"seconds": total - sum(p["seconds"] for p in parts.values())}
            variant.report["split"] = {"total_seconds": total, **parts}
            variant.report["nonfinite_latents"] = split.nonfinite
            solo = variant.job(1)
            variant.report["batch_vs_solo"] = _difference(_pixels(variant.images[:1]), _pixels(solo))
            save()

        # 4. FLOPs of the job, counted on the plain variant's (or the first one's) real calls
        flops = count_flops(variants[0], device)
        report["flops"] = flops
        save()

    summarise(report, variants, flops)
    save()
    print(f"wrote {args.out}")
    return 0


def load_variants(
    args: argparse.Namespace,
    folder: Path,
    device: Device,
    dtype: Any,
    base: dict[str, Any],
    steps: int,
    size: int,
    report: dict[str, Any],
    save: Callable[[], None],
    left: Callable[[], float],
) -> list[Variant]:
    """Load (and compile) each variant, then its untimed runs; a variant that cannot run here says why."""
    from bot.config import ConfigError
    from bot.diffusion.compiled import compile_counters

    variants: list[Variant] = []
    for name in args.variants:
        entry: dict[str, Any] = {}
        report["variants"][name] = entry
        if name in ("compiled", "fp8") and left() < COMPILE_RESERVE_S:
            entry["skipped"] = f"time budget: {left():.0f} s left, a compiled variant needs ~{COMPILE_RESERVE_S:.0f}"
            print(f"{name}: skipped ({entry['skipped']})", flush=True)
            save()
            continue
        before = compile_counters()
        t = time.perf_counter()
        try:
            if name == "plain":
                variant = load_plain(folder, device, dtype, steps, size)
            else:
                settings = model_settings(folder, variant_options(name, base, tiny=args.tiny))
                variant = load_seedgrid(name, settings, steps, size)
        except ConfigError as exc:  # FP8 where it cannot run
            entry["skipped"] = str(exc)
            print(f"{name}: skipped ({exc})", flush=True)
            save()
            continue
        entry.update(variant.report)
        entry["load_seconds"] = time.perf_counter() - t - entry.get("compile_seconds", 0.0)
        for _ in range(args.warmup):
            variant.job(IMAGES)
        device.sync()
        after = compile_counters()
        entry["graphs_at_load"] = after["graphs"] - before["graphs"]
        entry["graph_breaks_at_load"] = after["graph_breaks"] - before["graph_breaks"]
        variant.report = entry
        variants.append(variant)
        compile_text = f", compiled in {entry['compile_seconds']:.1f} s" if "compile_seconds" in entry else ""
        print(
            f"{name}: loaded in {entry['load_seconds']:.1f} s{compile_text}; "
            f"options {', '.join(entry['options'])}; graphs {entry['graphs_at_load']}, "
            f"graph breaks {entry['graph_breaks_at_load']}",
            flush=True,
        )
        save()
    return variants


def count_flops(variant: Variant, device: Device) -> dict[str, Any]:
    """FLOPs of one job with ``FlopCounterMode`` (eager: FLOPs are the same for every variant), split by part."""
    from torch.utils.flop_counter import FlopCounterMode

    module = getattr(variant.pipe, variant.denoiser)
    denoiser = {"calls": 0, "flops": 0}
    starts: list[int] = []
    with FlopCounterMode(display=False) as counter:
        pre = module.register_forward_pre_hook(lambda *_: starts.append(counter.get_total_flops()))

        def post(*_: Any) -> None:
            denoiser["calls"] += 1
            denoiser["flops"] += counter.get_total_flops() - starts.pop()

        hook = module.register_forward_hook(post)
        try:
            variant.job(IMAGES)
        finally:
            pre.remove()
            hook.remove()
    device.sync()
    total = float(counter.get_total_flops())
    return {
        "total": total,
        "denoiser": float(denoiser["flops"]),
        "denoiser_calls": denoiser["calls"],
        "denoiser_per_call": denoiser["flops"] / max(1, denoiser["calls"]),
        "rest": total - denoiser["flops"],
        "counted_on": variant.name,
    }


def summarise(report: dict[str, Any], variants: list[Variant], flops: dict[str, Any]) -> None:
    job = report["job"]
    matmul = report["matmul"]
    bf16 = matmul["bf16"]["flops_per_second"]
    fp8 = matmul.get("fp8", {}).get("flops_per_second")
    plain = next((v for v in variants if v.name == "plain"), None)
    print()
    print(
        f"job: {job['images']} images, {job['size']}², {job['steps']} steps, guidance {job['guidance']}, "
        f"{job['dtype']}; "
        f"{flops['total'] / 1e12:.2f} TFLOP counted ({flops['denoiser_calls']} denoiser calls of "
        f"{flops['denoiser_per_call'] / 1e12:.3f} TFLOP)"
    )
    header = (
        f"{'variant':<9} {'min s':>7} {'median':>7} {'max s':>7} {'img/s':>6} {'vs plain':>8} {'bf16 ceil':>9} "
        f"{'fp8 ceil':>8} {'alloc GiB':>9} {'resv GiB':>8} {'denoiser/call':>13} {'decode':>7} {'to PIL':>7} "
        f"{'diff plain':>10} {'batch≡solo':>10}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        r = variant.report
        seconds = variant.seconds
        mid = median(seconds)
        r["seconds"] = {"min": min(seconds), "median": mid, "max": max(seconds), "runs": len(seconds)}
        r["images_per_second"] = job["images"] / mid
        r["share_of_bf16_ceiling"] = flops["total"] / mid / bf16
        r["share_of_fp8_ceiling"] = flops["total"] / mid / fp8 if fp8 else None
        if plain is not None:
            r["speedup_vs_plain"] = median(plain.seconds) / mid
            pixels = _pixels(variant.images)
            reference = _pixels(plain.images)
            r["difference_to_plain_per_tile"] = [_difference(pixels[i], reference[i]) for i in range(len(pixels))]
        split = r["split"]
        diff = max((d["max"] for d in r.get("difference_to_plain_per_tile", [])), default=float("nan"))
        print(
            f"{variant.name:<9} {min(seconds):>7.3f} {mid:>7.3f} {max(seconds):>7.3f} {r['images_per_second']:>6.2f} "
            f"{r.get('speedup_vs_plain', float('nan')):>7.2f}× {r['share_of_bf16_ceiling']:>9.1%} "
            f"{(r['share_of_fp8_ceiling'] or float('nan')):>8.1%} {r.get('peak_allocated_bytes', 0) / 2**30:>9.2f} "
            f"{r.get('peak_reserved_bytes', 0) / 2**30:>8.2f} "
            f"{(split['denoiser']['per_call'] or 0) * 1e3:>10.1f} ms {split['vae_decode']['seconds'] * 1e3:>4.0f} ms "
            f"{split['image_conversion']['seconds'] * 1e3:>4.0f} ms {diff:>10.0f} {r['batch_vs_solo']['max']:>10.0f}"
        )
        print(f"{'':<9} options: {', '.join(r['options'])}")
    for name, entry in report["variants"].items():
        if "skipped" in entry:
            print(f"{name:<9} skipped: {entry['skipped']}")
    print(
        f"graphs compiled during the timed runs (recompiles in service): {report['graphs_during_timed_runs']}; "
        "differences are in 0-255 pixel levels (max over the tile)"
    )


if __name__ == "__main__":
    sys.exit(main())
