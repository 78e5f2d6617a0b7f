"""A tiny, random, offline Stable Diffusion XL pipeline (``StableDiffusionXLPipeline``).

Shaped like SDXL base where the bot's code paths care: two CLIP text encoders whose penultimate
hidden states are concatenated (the second with a projection, whose ``text_embeds`` are the pooled
embedding), a UNet with SDXL's ``text_time`` added conditioning (pooled text + the six size/crop
ids), a VAE that downsamples by 8 with SDXL's ``scaling_factor``, SDXL base's Euler scheduler, and
``force_zeros_for_empty_prompt`` as in SDXL base. Everything else is as small as it gets, after
diffusers' own ``StableDiffusionXLPipelineFastTests.get_dummy_components``.

``tokenizer_2`` pads with ``!`` as SDXL base's does. The weights come from ``torch.manual_seed(0)``
inside :func:`torch.random.fork_rng`: the folder is identical on every run.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from tests.families.parts import brighten, clip_config, seeded_save
from tests.families.tokenizers import clip_tokenizer

MAX_TOKENS = 77
VAE_SCALE = 8
TINY_SIZE: tuple[int, int] = (8, 8)
"""(width, height): the smallest size that runs (a 1×1 latent: a multiple of the VAE's 8)."""
TINY_WIDE: tuple[int, int] = (16, 8)
DEFAULT_SIZE = 64
"""The pipeline's default image side: UNet ``sample_size`` 8 × VAE scale factor 8."""

# SDXL base's scheduler/scheduler_config.json, minus the bookkeeping keys.
SDXL_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}

ADDITION_TIME_EMBED_DIM = 8
HIDDEN_1 = 16  # CLIP ViT-L: 768
HIDDEN_2 = 32  # OpenCLIP ViT-bigG: 1280 (and its projection)


def _text_config(tokenizer: CLIPTokenizer, hidden_size: int) -> CLIPTextConfig:
    return clip_config(tokenizer, hidden_size, projection_dim=hidden_size, hidden_act="gelu")


def _components() -> dict[str, object]:
    tokenizer = clip_tokenizer(MAX_TOKENS)
    tokenizer_2 = clip_tokenizer(MAX_TOKENS)
    tokenizer_2.pad_token = "!"
    unet = UNet2DConditionModel(
        sample_size=DEFAULT_SIZE // VAE_SCALE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=ADDITION_TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * ADDITION_TIME_EMBED_DIM + HIDDEN_2,
        cross_attention_dim=HIDDEN_1 + HIDDEN_2,
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
        sample_size=DEFAULT_SIZE,
        scaling_factor=0.13025,
        force_upcast=True,
    )
    brighten(vae)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": CLIPTextModel(_text_config(tokenizer, HIDDEN_1)),
        "text_encoder_2": CLIPTextModelWithProjection(_text_config(tokenizer_2, HIDDEN_2)),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": EulerDiscreteScheduler(**SDXL_SCHEDULER),
        "image_encoder": None,
        "feature_extractor": None,
        "force_zeros_for_empty_prompt": True,
    }


def build_sdxl(path: Path) -> Path:
    """Build the tiny random SDXL pipeline, ``save_pretrained`` it into ``path`` and return ``path``."""
    return seeded_save(lambda: StableDiffusionXLPipeline(**_components()), path)
