"""The tiny SDXL, SD3, PixArt-Σ and Sana pipelines and the tiny tokenizers build, load and run.

Each builder's folder is loaded the way the bot loads a model
(``diffusers.AutoPipelineForText2Image.from_pretrained``) and run for 2 steps on 2 prompts with one
seeded generator per image: 2 distinct, non-flat images of the requested size (square and wide),
the same pixels on a repeated call, and the same folder, byte for byte, on a second build. The
bot's own family detection and call arguments (:mod:`bot.diffusion.families`) must work on them too.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import GemmaTokenizerFast, Qwen2TokenizerFast, T5TokenizerFast

from bot.diffusion import families
from tests.families import pixart, sana, sd3, sdxl
from tests.families.tokenizers import (
    QWEN_SPECIALS,
    clip_tokenizer,
    gemma_tokenizer,
    qwen2_tokenizer,
    t5_tokenizer,
)

PROMPTS = ["a cat"] * 2
SEEDS = (1, 2)
STEPS = 2


@dataclass(frozen=True)
class Case:
    module: ModuleType
    build: Callable[[Path], Path]
    pipeline_class: type
    family: str
    """The bot's name for it (:func:`bot.diffusion.families.identify`)."""
    multiple: int
    """The size multiple of the real models (VAE factor × patch size)."""
    tokenizers: dict[str, int]
    """Tokenizer attribute → ``model_max_length``."""
    call_kwargs: dict[str, Any] = field(default_factory=dict)


CASES = {
    "sdxl": Case(
        sdxl,
        sdxl.build_sdxl,
        diffusers.StableDiffusionXLPipeline,
        "sdxl",
        8,
        {"tokenizer": 77, "tokenizer_2": 77},
    ),
    "sd3": Case(
        sd3,
        sd3.build_sd3,
        diffusers.StableDiffusion3Pipeline,
        "sd3",
        16,
        {"tokenizer": 77, "tokenizer_2": 77, "tokenizer_3": 256},
        {"max_sequence_length": 256},
    ),
    "pixart-sigma": Case(
        pixart,
        pixart.build_pixart_sigma,
        diffusers.PixArtSigmaPipeline,
        "pixart-sigma",
        16,
        {"tokenizer": 300},
        {"negative_prompt": "", "max_sequence_length": 300},  # None crashes: it calls negative_prompt.lower()
    ),
    "sana": Case(
        sana,
        sana.build_sana,
        diffusers.SanaPipeline,
        "sana",
        32,
        {"tokenizer": 300},
        {"negative_prompt": "", "max_sequence_length": 300},  # None crashes: it calls negative_prompt.lower()
    ),
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a busy machine two spin-waiting threads are ~10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture(scope="module")
def pipe(case: Case, tmp_path_factory: pytest.TempPathFactory) -> diffusers.DiffusionPipeline:
    folder = case.build(tmp_path_factory.mktemp(case.family))
    pipeline = diffusers.AutoPipelineForText2Image.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def run(pipe: diffusers.DiffusionPipeline, size: tuple[int, int], **kwargs: Any) -> list[Image.Image]:
    width, height = size
    images = pipe(
        prompt=PROMPTS,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in SEEDS],
        num_inference_steps=STEPS,
        width=width,
        height=height,
        output_type="pil",
        **kwargs,
    ).images
    return list(images)


def test_the_bots_loader_picks_the_family_class(case: Case, pipe: diffusers.DiffusionPipeline) -> None:
    assert type(pipe) is case.pipeline_class
    assert families.identify(families.facts_of(pipe)).name == case.family
    assert families.read_family(str(pipe.name_or_path)).name == case.family


def test_tiny_sizes_are_multiples_of_the_real_models(case: Case, pipe: diffusers.DiffusionPipeline) -> None:
    width, height = case.module.TINY_WIDE
    assert width != height
    for side in (*case.module.TINY_SIZE, width, height):
        assert side % case.multiple == 0
        assert side % pipe.vae_scale_factor == 0


@pytest.mark.parametrize("size_name", ["TINY_SIZE", "TINY_WIDE"])
def test_two_distinct_non_flat_images_of_the_size(
    case: Case, pipe: diffusers.DiffusionPipeline, size_name: str
) -> None:
    size = getattr(case.module, size_name)
    images = run(pipe, size, **case.call_kwargs)
    assert len(images) == 2
    pixels = []
    for image in images:
        assert isinstance(image, Image.Image)
        assert image.size == size
        assert image.mode == "RGB"
        array = np.asarray(image, dtype=np.int16)
        assert np.ptp(array) > 64, "a flat image: the VAE output gain is missing"
        pixels.append(array)
    assert np.abs(pixels[0] - pixels[1]).mean() > 1, "two seeds gave the same image"


def test_the_same_call_gives_the_same_pixels(case: Case, pipe: diffusers.DiffusionPipeline) -> None:
    first = run(pipe, case.module.TINY_SIZE, **case.call_kwargs)
    second = run(pipe, case.module.TINY_SIZE, **case.call_kwargs)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_the_bots_call_arguments_run(case: Case, pipe: diffusers.DiffusionPipeline) -> None:
    family = families.identify(families.facts_of(pipe))
    accepted = families.call_defaults(type(pipe))
    for negative in ("", "blurry"):
        kwargs = families.call_arguments(family, accepted, count=2, negative=negative, guidance=family.guidance)
        images = run(pipe, case.module.TINY_WIDE, **kwargs)
        assert [image.size for image in images] == [case.module.TINY_WIDE] * 2


def test_tokenizer_limits_match_the_real_models(case: Case, pipe: diffusers.DiffusionPipeline) -> None:
    for attribute, limit in case.tokenizers.items():
        assert getattr(pipe, attribute).model_max_length == limit, attribute
    default = families.call_defaults(type(pipe)).get("max_sequence_length")
    if default is not None:  # the T5 / Gemma reader keeps what the pipeline asks for by default
        assert default == max(case.tokenizers.values())


def test_the_build_is_deterministic(case: Case, tmp_path: Path) -> None:
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    rng_state = torch.random.get_rng_state()
    first = files(case.build(tmp_path / "first"))
    second = files(case.build(tmp_path / "second"))
    assert torch.equal(torch.random.get_rng_state(), rng_state), "the builder moved the global RNG"
    assert first.keys() == second.keys()
    assert "model_index.json" in first
    assert [name for name in first if first[name] != second[name]] == []


# --- tokenizers ----------------------------------------------------------------------------------

TOKENIZERS: dict[str, Callable[[], Any]] = {
    "clip": clip_tokenizer,
    "t5": t5_tokenizer,
    "qwen2": qwen2_tokenizer,
    "gemma": gemma_tokenizer,
}
TEXTS = ("a cat", "A café in Seoul 서울 🐱!", "  two  spaces\nand a newline", "x" * 600)


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_tokenizers_are_small_quick_and_survive_a_reload(name: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    tokenizer = TOKENIZERS[name]()
    assert time.perf_counter() - start < 0.5
    assert len(tokenizer) <= 1000
    assert TOKENIZERS[name]().get_vocab() == tokenizer.get_vocab()
    tokenizer.save_pretrained(tmp_path)
    reloaded = type(tokenizer).from_pretrained(tmp_path)
    assert len(reloaded) == len(tokenizer)
    assert reloaded.model_max_length == tokenizer.model_max_length
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        assert reloaded(text).input_ids == ids
        assert all(0 <= i < len(tokenizer) for i in ids)
        padded = tokenizer([text, "a"], padding="max_length", max_length=40, truncation=True).input_ids
        assert [len(row) for row in padded] == [40, 40]


@pytest.mark.parametrize("name", ["qwen2", "gemma"])
def test_byte_level_tokenizers_round_trip_any_text(name: str) -> None:
    tokenizer = TOKENIZERS[name]()
    for text in TEXTS:
        ids = tokenizer(text).input_ids
        assert tokenizer.convert_tokens_to_ids(tokenizer.unk_token) not in ids or name == "qwen2"
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_t5_tokenizer_is_t5_shaped() -> None:
    tokenizer = t5_tokenizer(300)
    assert isinstance(tokenizer, T5TokenizerFast)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.model_max_length == 300
    ids = tokenizer("a cat").input_ids
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a cat"
    # like the real T5, characters outside its vocabulary become <unk> (a run of them, one)
    assert tokenizer.unk_token_id in tokenizer("서울").input_ids
    assert t5_tokenizer().model_max_length == 512


def test_gemma_tokenizer_is_gemma_shaped() -> None:
    tokenizer = gemma_tokenizer()
    assert isinstance(tokenizer, GemmaTokenizerFast)
    assert [tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id] == [0, 1, 2]
    assert tokenizer.model_max_length == 300
    ids = tokenizer("a cat sleeping").input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:]) == ["a", "▁cat", "▁sleeping"]
    # Sana's instruction is ~230 tokens (not ~1,060): the tiny Gemma 2 stays cheap
    instruction = inspect.signature(diffusers.SanaPipeline.__call__).parameters["complex_human_instruction"]
    assert len(tokenizer.encode("\n".join(instruction.default))) < 300


def test_chat_template_thinking_block_and_specials() -> None:
    tokenizer = qwen2_tokenizer()
    assert isinstance(tokenizer, Qwen2TokenizerFast)
    assert tokenizer.model_max_length == 512
    assert tokenizer.convert_tokens_to_ids(list(QWEN_SPECIALS)) == list(range(256, 256 + len(QWEN_SPECIALS)))
    assert (tokenizer.pad_token, tokenizer.eos_token) == ("<|endoftext|>", "<|im_end|>")
    messages = [{"role": "user", "content": "a cat"}]
    # Z-Image: enable_thinking=True, no think block; Flux.2 Klein: False, an empty one
    thinking = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    assert thinking == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"
    plain = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert plain == thinking + "<think>\n\n</think>\n\n"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(plain).input_ids)
    assert tokens[0] == "<|im_start|>"
    assert tokens.count("<|im_end|>") == 1
    assert "<think>" in tokens
    assert "</think>" in tokens
