"""A tiny, random, offline Z-Image pipeline (``ZImagePipeline``) for fast tests.

:func:`build_z_image` writes a folder laid out like ``Tongyi-MAI/Z-Image-Turbo``
(``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/`` (``Qwen3Model``),
``tokenizer/``, ``scheduler/``), so ``AutoPipelineForText2Image.from_pretrained(folder)`` picks
``ZImagePipeline`` with no network. It follows diffusers' fast test
(``tests/pipelines/z_image/test_z_image.py``), with the real checkpoint's shapes where callers see them:

* FLUX.1's VAE layout (×8, 16 latent channels, FLUX's scaling/shift factors:
  :func:`tests.families.flux.flux_vae`); the transformer patchifies the latents 2×2 itself, so the
  pipeline's latents stay 4-D ``(B, 16, H/8, W/8)`` and sizes must be multiples of 16
  (``vae_scale_factor * 2``; the pipeline raises ``ValueError`` otherwise);
* the transformer's RoPE tables are as long as the real ones (``axes_lens=[1024, 512, 512]``): the
  caption axis holds the prompt's tokens (up to ``max_sequence_length=512``, padded to 32);
* Z-Image-Turbo's scheduler config (a fixed shift of 3); the pipeline runs CFG when
  ``guidance_scale > 0`` (Turbo is used with ``guidance_scale=0``).

Weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the same call writes
the same folder every time and leaves the caller's RNG alone.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
from transformers import Qwen3Config, Qwen3Model

from tests.families.flux import LATENT_CHANNELS, flux_vae
from tests.families.parts import seeded_save
from tests.families.tokenizers import qwen2_tokenizer

TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest image, one 2×2 latent patch = one transformer token."""

TINY_WIDE: tuple[int, int] = (48, 32)
"""(width, height): a non-square size (3×2 tokens) that catches height/width mix-ups."""

SPATIAL_MULTIPLE = 16
"""``pipe.vae_scale_factor * 2``: the VAE downsamples by 8 and the transformer patchifies 2×2."""

MAX_TOKENS = 512
TEXT_HIDDEN = 16

# Tongyi-MAI/Z-Image-Turbo's scheduler/scheduler_config.json.
Z_IMAGE_SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": False}


def _components() -> dict[str, object]:
    tokenizer = qwen2_tokenizer(max_length=MAX_TOKENS)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=LATENT_CHANNELS,
        dim=32,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=TEXT_HIDDEN,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],
        axes_lens=[1024, 512, 512],
    )
    text_config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=TEXT_HIDDEN // 2,
        max_position_embeddings=MAX_TOKENS,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return {
        "transformer": transformer,
        "vae": flux_vae(),
        "text_encoder": Qwen3Model(text_config),
        "tokenizer": tokenizer,
        "scheduler": FlowMatchEulerDiscreteScheduler(**Z_IMAGE_SCHEDULER),
    }


def build_z_image(path: Path) -> Path:
    """Build a tiny random Z-Image(-Turbo) pipeline, ``save_pretrained`` it into ``path`` and return ``path``.

    ``guidance_scale=0`` (Turbo's setting) runs one transformer pass per step; ``guidance_scale > 0``
    runs CFG against ``negative_prompt`` (default ``""``).
    """
    return seeded_save(lambda: ZImagePipeline(**_components()), path)  # type: ignore[arg-type]
