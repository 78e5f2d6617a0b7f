"""A tiny, random, offline Qwen-Image pipeline (``QwenImagePipeline``) for fast tests.

:func:`build_qwen_image` writes a folder laid out like ``Qwen/Qwen-Image`` (``model_index.json``,
``transformer/``, ``vae/`` (``AutoencoderKLQwenImage``), ``text_encoder/``
(``Qwen2_5_VLForConditionalGeneration``), ``tokenizer/``, ``scheduler/``), so
``AutoPipelineForText2Image.from_pretrained(folder)`` picks ``QwenImagePipeline`` with no network.
It follows diffusers' fast test (``tests/pipelines/qwenimage/test_qwenimage.py``), except where the
real checkpoint shows through the pipeline's usual arguments:

* the VAE has Qwen-Image's 16 latent channels and 3 temporal downsamples, i.e. ``vae_scale_factor``
  8 (``2 ** len(temperal_downsample)``); latents are packed 2×2 (64 transformer input channels), so
  sizes are multiples of 16. The decoder works on video-shaped ``(B, C, 1, H, W)`` latents;
* Qwen-Image's scheduler config (dynamic exponential shift, ``shift_terminal``);
* the tokenizer is :func:`tests.families.tokenizers.qwen2_tokenizer` (one token per byte plus
  Qwen's specials). The pipeline wraps each prompt in a fixed system template and drops its first
  34 tokens (``prompt_template_encode_start_idx``), the template's length with the real tokenizer;
  with this byte-level one the template is longer, so the embeddings keep the template's tail (about
  100 tokens) before the prompt. Harmless for a random model, but a prompt's embedding length is not
  its token count.

Weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the same call writes
the same folder every time and leaves the caller's RNG alone.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from tests.families.parts import brighten, seeded_save
from tests.families.tokenizers import qwen2_tokenizer

TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest image, one 2×2 latent patch = one transformer token."""

TINY_WIDE: tuple[int, int] = (48, 32)
"""(width, height): a non-square size (3×2 tokens) that catches height/width mix-ups."""

SPATIAL_MULTIPLE = 16
"""``pipe.vae_scale_factor * 2``: the VAE downsamples by 8 and the latents are packed 2×2."""

MAX_TOKENS = 1024
"""The pipeline's ``tokenizer_max_length`` (the real tokenizer's ``model_max_length`` is larger)."""
LATENT_CHANNELS = 16
TEXT_HIDDEN = 16

# Qwen/Qwen-Image's scheduler/scheduler_config.json.
QWEN_IMAGE_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 0.9,
    "base_image_seq_len": 256,
    "max_image_seq_len": 8192,
    "shift_terminal": 0.02,
    "time_shift_type": "exponential",
}

# Qwen-Image's VAE latent statistics (the defaults of AutoencoderKLQwenImage), written out so the
# folder's vae/config.json is explicit about them.
LATENTS_MEAN = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
]  # fmt: skip
LATENTS_STD = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
]  # fmt: skip


def _text_encoder(vocab_size: int, *, pad_token_id: int, eos_token_id: int) -> Qwen2_5_VLForConditionalGeneration:
    head_dim = TEXT_HIDDEN // 2
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_window_layers": 2,
            "max_position_embeddings": 2048,
            # M-RoPE: (temporal, height, width) sections of head_dim / 2 rotary frequencies.
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 2]},
            "pad_token_id": pad_token_id,
            "eos_token_id": eos_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "depth": 1,
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "fullatt_block_indexes": [0],
        },
    )
    assert head_dim // 2 == sum(config.text_config.rope_parameters["mrope_section"])
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _components() -> dict[str, object]:
    tokenizer = qwen2_tokenizer(max_length=MAX_TOKENS)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=LATENT_CHANNELS * 4,
        out_channels=LATENT_CHANNELS,
        num_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=LATENT_CHANNELS,
        dim_mult=[1, 1, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=LATENTS_MEAN,
        latents_std=LATENTS_STD,
    )
    brighten(vae)
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": _text_encoder(
            len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        ),
        "tokenizer": tokenizer,
        "scheduler": FlowMatchEulerDiscreteScheduler(**QWEN_IMAGE_SCHEDULER),
    }


def build_qwen_image(path: Path) -> Path:
    """Build a tiny random Qwen-Image pipeline, ``save_pretrained`` it into ``path`` and return ``path``.

    Like the real model it has no guidance embedding: guidance is ``true_cfg_scale`` (> 1) with a
    ``negative_prompt`` (e.g. ``" "``), which runs the transformer twice per step.
    """
    return seeded_save(lambda: QwenImagePipeline(**_components()), path)  # type: ignore[arg-type]
