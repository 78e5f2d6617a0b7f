"""A tiny, random, offline Stable Diffusion 1.x pipeline for fast tests.

:func:`build_tiny_pipeline` writes a folder with the same layout as a Hub checkpoint
(``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``
and optionally ``safety_checker/`` + ``feature_extractor/``), so that
``AutoPipelineForText2Image.from_pretrained(folder)`` exercises the real loader with no network.

The shapes mirror SD 1.5 where it matters for the bot's code paths: a VAE that downsamples by 8
(64×64 images ↔ 8×8 latents), a CLIP tokenizer with ``model_max_length=77``, the SD 1.5 PNDM
scheduler config, a classifier-free-guidance UNet with cross-attention. Everything else is as
small as it gets: four 64×64 images in 4 steps take a few tens of milliseconds on a laptop CPU.

The weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`, so the
folder is identical on every run and the caller's global RNG state is left alone.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
)

MAX_TOKENS = 77
IMAGE_SIZE = 64
"""The pipeline's default image side (UNet ``sample_size`` 8 × VAE scale factor 8)."""

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

# SD 1.5's scheduler/scheduler_config.json, minus the bookkeeping keys.
SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}

VAE_OUTPUT_GAIN = 2.0
"""A random VAE decoder's output hovers near zero, i.e. flat mid-grey images. Scaling its last
convolution spreads the pixels over the whole 0..255 range so image comparisons mean something."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character map (the byte-level BPE alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def write_tokenizer_files(folder: Path) -> Path:
    """Write a tiny CLIP BPE ``vocab.json`` + ``merges.txt``: every byte, alone and word-final.

    With no merges every character is one token, so any text (any language, emoji) tokenizes
    and a prompt of ``n`` plain characters is ``n`` tokens plus the two specials.
    """
    folder.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    tokens = [*alphabet, *(c + "</w>" for c in alphabet), BOS, EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return folder


def _tokenizer() -> CLIPTokenizer:
    with tempfile.TemporaryDirectory(prefix="tiny-clip-tokenizer-") as tmp:
        folder = write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)


def _components(tokenizer: CLIPTokenizer, *, safety_checker: bool) -> dict[str, object]:
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=IMAGE_SIZE,
    )
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(VAE_OUTPUT_GAIN)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    components: dict[str, object] = {
        "unet": unet,
        "vae": vae,
        "text_encoder": CLIPTextModel(text_config),
        "tokenizer": tokenizer,
        "scheduler": PNDMScheduler(**SD15_SCHEDULER),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    if safety_checker:
        vision_config = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        )
        clip_config = CLIPConfig(
            text_config=text_config.to_dict(), vision_config=vision_config.to_dict(), projection_dim=32
        )
        checker = StableDiffusionSafetyChecker(clip_config)
        with torch.no_grad():  # thresholds of 1.0: a cosine never exceeds them, so nothing is flagged
            checker.concept_embeds_weights.fill_(1.0)
            checker.special_care_embeds_weights.fill_(1.0)
        components["safety_checker"] = checker
        components["feature_extractor"] = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        components["requires_safety_checker"] = True
    return components


def build_tiny_pipeline(path: Path, *, safety_checker: bool = False) -> Path:
    """Build the tiny random SD 1.x pipeline, ``save_pretrained`` it into ``path`` and return ``path``.

    Deterministic: the same call writes the same weights every time. With ``safety_checker=True``
    the folder also holds a tiny random ``StableDiffusionSafetyChecker`` (which flags nothing until
    its ``concept_embeds_weights`` are lowered) and its ``CLIPImageProcessor``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe = StableDiffusionPipeline(**_components(_tokenizer(), safety_checker=safety_checker))
    pipe.save_pretrained(path)
    return path
