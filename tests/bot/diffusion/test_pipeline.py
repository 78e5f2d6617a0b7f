"""The real diffusers pipeline (``bot/diffusion/pipeline.py``), on a tiny random SD 1.x model saved to disk
and loaded back."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from PIL import Image
from transformers import CLIPImageProcessor

from bot.config import ConfigError, ModelSettings
from bot.diffusion.devices import resolve_device, resolve_dtype
from bot.diffusion.families import SD1
from bot.diffusion.pipeline import MAX_TILES, GenerationOutput, Pipeline
from bot.diffusion.prompts import PromptLimit
from bot.diffusion.schedulers import resolve_scheduler
from bot.jobs import GenParams, JobKind, JobRequest, RenderCancelled, Tile
from tests.tiny_model import build_tiny_pipeline

SIZE = 64
STEPS = 4

# Tile i of a batch vs the same prompt and seed run alone, on CPU: the initial noise is identical
# (one CPU generator per tile), but batched convolutions/matmuls round differently in the last
# bits. Measured on this project's 2-core CI machine over 120 tiles (PNDM, 2/4/8 steps): latents
# differ by at most 1.2e-5 (values up to ~14), 49 tiles were bit-identical, 71 differed by 1/255
# in at most a few channel values (0.008 % of all values); 2/255 was seen once with 20 DDIM steps.
BATCH_TOLERANCE = 2


@pytest.fixture(scope="module")
def model_dir(tiny_model: Path) -> Path:
    """The session's tiny SD 1.x folder (tests/conftest.py), built once by tests.tiny_model."""
    return tiny_model


@pytest.fixture(scope="module")
def pipeline(model_dir: Path) -> Pipeline:
    return Pipeline.load(ModelSettings(id=str(model_dir), device="cpu"))


def params(*tiles: tuple[str, int], steps: int = STEPS, negative: str = "", size: int = SIZE) -> GenParams:
    return GenParams(
        tiles=tuple(Tile(prompt, seed) for prompt, seed in tiles),
        negative=negative,
        steps=steps,
        guidance=7.5,
        width=size,
        height=size,
    )


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(pixels(a) - pixels(b)).max())


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def solo(pipeline: Pipeline, tile: Tile, batch: GenParams) -> Image.Image:
    return pipeline.generate(dataclasses.replace(batch, tiles=(tile,))).images[0]


# --- loading ------------------------------------------------------------------------------------


def test_load_reports_what_it_loaded(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.diffusion.pipeline"):
        loaded = Pipeline.load(ModelSettings(id=str(model_dir), device="auto", dtype="float32"))
    assert loaded.info.model == str(model_dir)
    assert loaded.info.dtype == "float32"
    assert loaded.info.scheduler == "PNDMScheduler"  # the model's own (SD 1.5's default)
    assert loaded.max_prompt_tokens == 77
    assert any(
        r.levelno == logging.INFO and "loaded model" in r.getMessage() and "PNDMScheduler" in r.getMessage()
        for r in caplog.records
    )


def test_cpu_info(pipeline: Pipeline) -> None:
    assert (pipeline.info.device, pipeline.info.dtype) == ("cpu", "float32")


@pytest.mark.parametrize("name", ["EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler"])
def test_scheduler_override(model_dir: Path, name: str) -> None:
    loaded = Pipeline.load(ModelSettings(id=str(model_dir), device="cpu", scheduler=name))
    assert loaded.info.scheduler == name
    steps: list[tuple[int, int]] = []
    output = loaded.generate(params(("a cat", 1), ("a cat", 2)), on_step=lambda n, t: steps.append((n, t)))
    assert steps == [(n, STEPS) for n in range(1, STEPS + 1)]
    assert len(output.images) == 2


@pytest.mark.parametrize("name", ["NoSuchScheduler", "StableDiffusionPipeline", "AutoencoderKL"])
def test_bad_scheduler_names_fail_clearly(model_dir: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"model\.scheduler: '{name}' is not a scheduler"):
        resolve_scheduler(name)
    with pytest.raises(ValueError, match=r"model\.scheduler"):
        Pipeline.load(ModelSettings(id=str(model_dir), device="cpu", scheduler=name))


def test_cpu_offload_is_ignored_on_cpu(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.pipeline"):
        loaded = Pipeline.load(ModelSettings(id=str(model_dir), device="cpu", cpu_offload=True))
    assert loaded.info.device == "cpu"
    assert "cpu_offload" in caplog.text


# --- device and dtype ---------------------------------------------------------------------------


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.usefixtures("no_accelerator")
def test_device_on_a_cpu_machine() -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    for name in ("cuda", "cuda:0", "mps"):
        with pytest.raises(ConfigError, match=rf"model\.device: '{name}' was asked for"):
            resolve_device(name)


@pytest.mark.usefixtures("two_gpus")
def test_device_with_gpus() -> None:
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(ConfigError, match="torch sees 2 CUDA device"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:x", "cuda:-1", "CUDA"])
def test_device_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ConfigError, match=r"model\.device: expected auto, cpu, mps, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", "cpu", torch.float32),
        ("auto", "cuda", torch.float16),
        ("auto", "cuda:1", torch.float16),
        ("auto", "mps", torch.float16),
        ("bfloat16", "cpu", torch.bfloat16),
        ("float32", "cuda", torch.float32),
    ],
)
def test_dtype(setting: str, device: str, expected: torch.dtype) -> None:
    assert resolve_dtype(setting, device) == expected


def test_dtype_warns_about_float16_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.devices"):
        assert resolve_dtype("float16", "cpu") == torch.float16
    assert "float16" in caplog.text
    with pytest.raises(ConfigError, match=r"model\.dtype"):
        resolve_dtype("fp8", "cpu")


# --- generation ---------------------------------------------------------------------------------


def test_imagine_batch(pipeline: Pipeline) -> None:
    request = JobRequest(
        kind=JobKind.IMAGINE,
        prompt="a lighthouse",
        negative="",
        seed=1234,
        steps=STEPS,
        guidance=7.5,
        width=SIZE,
        height=SIZE,
    )
    output = pipeline.generate(request.params())
    assert isinstance(output, GenerationOutput)
    assert [im.size for im in output.images] == [(SIZE, SIZE)] * 4
    assert all(im.mode == "RGB" for im in output.images)
    assert output.nsfw == [False] * 4
    assert output.elapsed > 0
    # random weights, but real pictures: not one flat colour, and each seed its own
    assert all(pixels(im).std() > 20 for im in output.images)
    assert len({im.tobytes() for im in output.images}) == 4


def test_tile_i_of_a_batch_is_the_solo_image(pipeline: Pipeline) -> None:
    batch = params(("a red fox", 7), ("a red fox", 8), ("a blue fox", 9), ("a red fox", 2**32 - 1))
    output = pipeline.generate(batch)
    for tile, image in zip(batch.tiles, output.images, strict=True):
        assert max_diff(image, solo(pipeline, tile, batch)) <= BATCH_TOLERANCE


def test_same_params_twice_are_bit_identical(pipeline: Pipeline) -> None:
    batch = params(("a cat", 1), ("a cat", 2), ("a cat", 3), ("a cat", 4), negative="blurry")
    first = pipeline.generate(batch)
    second = pipeline.generate(batch)
    assert [im.tobytes() for im in first.images] == [im.tobytes() for im in second.images]


def test_refine_batch_keeps_the_seed(pipeline: Pipeline) -> None:
    parent = Tile("a castle", 99)
    suffixes = (", at night", ", artsy", ", in snow", ", colorful")
    request = JobRequest(
        kind=JobKind.REFINE,
        prompt=parent.prompt,
        negative="",
        seed=parent.seed,
        steps=STEPS,
        guidance=7.5,
        width=SIZE,
        height=SIZE,
        suffixes=suffixes,
    )
    batch = request.params()
    assert batch.seeds == [99] * 4
    output = pipeline.generate(batch)
    assert len({im.tobytes() for im in output.images}) == 4  # one generator each: prompts differ
    original = solo(pipeline, parent, batch)
    other_seed = solo(pipeline, Tile(parent.prompt, 100), batch)
    for tile, image in zip(batch.tiles, output.images, strict=True):
        assert max_diff(image, solo(pipeline, tile, batch)) <= BATCH_TOLERANCE
        # the technique: a suffix moves the image far less than a new seed does
        assert mean_diff(image, original) < mean_diff(other_seed, original) / 4


def test_negative_prompt_changes_the_image(pipeline: Pipeline) -> None:
    plain = pipeline.generate(params(("a cat", 5))).images[0]
    negative = pipeline.generate(params(("a cat", 5), negative="dog")).images[0]
    assert plain.tobytes() != negative.tobytes()


@pytest.mark.parametrize("steps", [1, 2, STEPS])
def test_on_step_reports_every_step_once(pipeline: Pipeline, steps: int) -> None:
    # the tiny model keeps SD 1.5's PNDM scheduler, which runs steps + 1 loop iterations
    seen: list[tuple[int, int]] = []
    pipeline.generate(params(("a cat", 1), steps=steps), on_step=lambda n, total: seen.append((n, total)))
    assert seen == [(n, steps) for n in range(1, steps + 1)]


def test_should_stop_cancels_at_the_next_step(pipeline: Pipeline) -> None:
    seen: list[int] = []
    with pytest.raises(RenderCancelled, match="after 2 of 4 steps"):
        pipeline.generate(
            params(("a cat", 1), ("a cat", 2)),
            on_step=lambda n, _: seen.append(n),
            should_stop=lambda: len(seen) >= 2,
        )
    assert seen == [1, 2]


def test_should_stop_before_the_first_step(pipeline: Pipeline) -> None:
    seen: list[int] = []
    with pytest.raises(RenderCancelled, match="before the first step"):
        pipeline.generate(params(("a cat", 1)), on_step=lambda n, _: seen.append(n), should_stop=lambda: True)
    assert seen == []


def test_a_cancelled_run_leaves_no_trace(pipeline: Pipeline) -> None:
    batch = params(("a cat", 11), ("a dog", 12))
    before = pipeline.generate(batch)
    with pytest.raises(RenderCancelled):
        pipeline.generate(batch, should_stop=lambda: True)
    stops = iter([False, True])
    with pytest.raises(RenderCancelled):
        pipeline.generate(batch, should_stop=lambda: next(stops, True))
    after = pipeline.generate(batch)
    assert [im.tobytes() for im in before.images] == [im.tobytes() for im in after.images]


def test_callback_errors_propagate(pipeline: Pipeline) -> None:
    def boom(n: int, total: int) -> None:
        raise RuntimeError("progress sink broke")

    with pytest.raises(RuntimeError, match="progress sink broke"):
        pipeline.generate(params(("a cat", 1)), on_step=boom)
    assert len(pipeline.generate(params(("a cat", 1))).images) == 1  # the lock was released


@pytest.mark.parametrize(
    ("batch", "match"),
    [
        (params(), r"params\.tiles: need at least one tile"),
        (params(*[("a cat", i) for i in range(MAX_TILES + 1)]), rf"at most {MAX_TILES} tiles"),
        (params(("a cat", 1), size=60), r"params\.width: must be a positive multiple of 8 for Stable Diffusion 1\.x"),
        (dataclasses.replace(params(("a", 1)), height=0), r"params\.height"),
        (params(("a cat", 1), steps=0), r"params\.steps: must be at least 1"),
        (params(("a cat", -1)), r"params\.tiles\[0\]\.seed"),
        (params(("a cat", 1), ("a cat", 2**32)), r"params\.tiles\[1\]\.seed"),
        (dataclasses.replace(params(("a", 1)), guidance=float("nan")), r"params\.guidance"),
    ],
)
def test_check_inputs(pipeline: Pipeline, batch: GenParams, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pipeline.generate(batch)


def test_other_sizes(pipeline: Pipeline) -> None:
    output = pipeline.generate(dataclasses.replace(params(("a", 1), steps=2), width=96, height=64))
    assert output.images[0].size == (96, 64)


# --- prompts ------------------------------------------------------------------------------------


def test_prompt_overflow(pipeline: Pipeline) -> None:
    # the tiny tokenizer has no merges: one token per character, 75 of them fit between start and end
    kept = "a" * 75
    assert pipeline.prompt_overflow("") is None
    assert pipeline.prompt_overflow(kept) is None
    assert pipeline.prompt_overflow(kept + " Tail, ÉND 🐱") == "Tail, ÉND 🐱"  # the member's own text


def test_the_tokenizer_alone_cuts_where_the_pipeline_does(
    pipeline: Pipeline, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine loads only the tokenizer of each model to tell members what was cut (the redis backend's
    bot has no pipeline at all): it cuts where the loaded pipeline does."""
    limit = PromptLimit.load(str(model_dir), SD1)
    assert limit is not None and limit.max_prompt_tokens == pipeline.max_prompt_tokens
    for prompt in ("short", "a" * 75, "a" * 75 + " Tail, ÉND 🐱", "abcd " * 30):
        assert limit.prompt_overflow(prompt) == pipeline.prompt_overflow(prompt)
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.prompts"):
        assert PromptLimit.load(str(tmp_path / "no-model"), SD1) is None
    assert "long-prompt notice is off" in caplog.text


def test_overflow_is_what_the_pipeline_drops(pipeline: Pipeline) -> None:
    # 18 × 4 + 3 = 75 tokens that end on a word, then words the text encoder never sees
    kept = "abcd " * 18 + "xyz"
    long = kept + "  more words, Here"
    assert pipeline.prompt_overflow(long) == "more words, Here"
    images = [pipeline.generate(params((p, 3))).images[0] for p in (long, kept)]
    assert images[0].tobytes() == images[1].tobytes()


def test_prompt_overflow_from_another_thread_during_a_run(pipeline: Pipeline) -> None:
    running = threading.Event()  # the run has reported its first step
    checked = threading.Event()  # this thread has asked a few times while the run was under way
    done = threading.Event()
    errors: list[BaseException] = []

    def on_step(n: int, total: int) -> None:
        running.set()
        if n == total:  # the run does not end before the questions below have been asked
            checked.wait()

    def run() -> None:
        try:
            pipeline.generate(params(*[("x" * 90, i) for i in range(4)], steps=8), on_step=on_step)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run)
    worker.start()
    during_run = 0
    try:
        while not done.is_set():
            # as the event loop would: now and then (a busy loop here starves the worker of the GIL)
            assert pipeline.prompt_overflow("y" * 80) == "y" * 5
            if running.is_set() and not checked.is_set():
                during_run += 1
                if during_run == 3:
                    checked.set()
            done.wait(0.002)
    finally:
        checked.set()  # never leave the worker waiting
        worker.join()
    assert during_run == 3
    assert errors == []


# --- safety checker -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checked_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model plus a tiny random safety checker (same UNet, VAE and text encoder weights)."""
    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd-checked"), safety_checker=True)


def with_checker(source: Path, target: Path, concept: torch.Tensor | None = None, threshold: float = -2.0) -> Path:
    """A copy of ``source`` whose checker flags an image when its cosine with ``concept`` is above
    ``threshold`` (without ``concept``: every concept, so -2.0 flags everything)."""
    shutil.copytree(source, target)
    checker = StableDiffusionSafetyChecker.from_pretrained(target / "safety_checker")
    with torch.no_grad():
        if concept is None:
            checker.concept_embeds_weights.fill_(threshold)
        else:
            checker.concept_embeds[0] = concept
            checker.concept_embeds_weights[0] = threshold
    checker.save_pretrained(target / "safety_checker")
    return target


def load(folder: Path, **kwargs: bool) -> Pipeline:
    return Pipeline.load(ModelSettings(id=str(folder), device="cpu"), **kwargs)


CHECK_BATCH = params(("a cat", 1), ("a cat", 2), ("a dog", 3), ("a cat", 4))


@pytest.fixture(scope="module")
def unchecked(pipeline: Pipeline) -> list[Image.Image]:
    """The batch from the model without a checker: the images every checked run must return."""
    return pipeline.generate(CHECK_BATCH).images


@pytest.fixture(scope="module")
def unchecked_images(unchecked: list[Image.Image]) -> list[bytes]:
    return [im.tobytes() for im in unchecked]


def test_a_model_without_a_checker(pipeline: Pipeline) -> None:
    assert pipeline.info.safety_checker is False
    assert pipeline.generate(params(("a cat", 1))).nsfw == [False]


def test_clean_images_pass_the_checker(checked_model_dir: Path, unchecked_images: list[bytes]) -> None:
    loaded = load(checked_model_dir)
    assert loaded.info.safety_checker is True
    output = loaded.generate(CHECK_BATCH)
    assert output.nsfw == [False] * 4
    assert [im.tobytes() for im in output.images] == unchecked_images


def test_flagged_images_are_kept(
    checked_model_dir: Path, tmp_path: Path, unchecked_images: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    loaded = load(with_checker(checked_model_dir, tmp_path / "flags-all"))
    with caplog.at_level(logging.INFO, logger="bot.diffusion.pipeline"):
        output = loaded.generate(CHECK_BATCH)
    assert output.nsfw == [True] * 4
    # diffusers' own checker would have returned black images; these are the originals
    assert [im.tobytes() for im in output.images] == unchecked_images
    assert all(pixels(im).std() > 20 for im in output.images)
    assert "flagged tile(s) [1, 2, 3, 4] of 4" in caplog.text


def test_flags_are_per_image_in_tile_order(
    checked_model_dir: Path, tmp_path: Path, unchecked: list[Image.Image], unchecked_images: list[bytes]
) -> None:
    # a checker whose one concept is tile 3's own embedding, with a threshold between its cosine
    # with itself (1.0) and with the other tiles (≤ 0.993 on this model): only tile 3 is flagged
    images = unchecked  # the checked model has the same weights (test_clean_images_pass_the_checker)
    checker = StableDiffusionSafetyChecker.from_pretrained(checked_model_dir / "safety_checker")
    extractor = CLIPImageProcessor.from_pretrained(checked_model_dir / "feature_extractor")
    with torch.no_grad():
        clip_input = extractor(images, return_tensors="pt").pixel_values
        embeds = torch.nn.functional.normalize(checker.visual_projection(checker.vision_model(clip_input)[1]), dim=-1)
    cosines = (embeds @ embeds[2]).tolist()
    others = max(c for i, c in enumerate(cosines) if i != 2)
    assert others < 0.998  # room for the checker's rounding to 3 decimals
    loaded = load(with_checker(checked_model_dir, tmp_path / "flags-3", embeds[2], (1.0 + others) / 2))
    output = loaded.generate(CHECK_BATCH)
    assert output.nsfw == [False, False, True, False]
    assert [im.tobytes() for im in output.images] == unchecked_images
    # tiles are checked as a batch, but each on its own merits: alone, tile 3 is still flagged
    alone = loaded.generate(params(("a dog", 3)))
    assert alone.nsfw == [True]


def test_checker_off(checked_model_dir: Path, tmp_path: Path, unchecked_images: list[bytes]) -> None:
    loaded = load(with_checker(checked_model_dir, tmp_path / "flags-all"), safety_checker=False)
    assert loaded.info.safety_checker is False
    output = loaded.generate(CHECK_BATCH)
    assert output.nsfw == [False] * 4
    assert [im.tobytes() for im in output.images] == unchecked_images


def test_the_pipeline_gets_its_checker_back(checked_model_dir: Path) -> None:
    loaded = load(checked_model_dir)
    pipe = loaded._pipe
    checker, entry = pipe.safety_checker, pipe.config["safety_checker"]
    seen: list[object] = []

    def during(n: int, total: int) -> None:
        seen.append(pipe.safety_checker)
        if n == 2:
            raise RuntimeError("progress sink broke")

    with pytest.raises(RuntimeError, match="progress sink broke"):
        loaded.generate(params(("a cat", 1)), on_step=during)
    assert seen == [None, None]  # diffusers ran without it
    assert pipe.safety_checker is checker
    assert pipe.config["safety_checker"] == entry
    loaded.generate(params(("a cat", 1)))
    assert pipe.safety_checker is checker
    assert pipe.config["safety_checker"] == entry
