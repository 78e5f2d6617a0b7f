"""A tiny, random, offline Stable Diffusion 3 pipeline (``StableDiffusion3Pipeline``).

Shaped like SD3 medium where the bot's code paths care: an MMDiT ``SD3Transformer2DModel`` with
patch size 2 over a 16-channel latent of a VAE that downsamples by 8 (so sizes are multiples of 16)
with SD3's scaling and shift factors and no quant convs; three text encoders — two CLIPs with
projection (penultimate hidden states concatenated, then zero-padded to the T5 width; projections
concatenated into the pooled embedding) and a T5 encoder (``tokenizer_3``, 256 tokens as the
pipeline's ``max_sequence_length`` default); SD3's ``FlowMatchEulerDiscreteScheduler(shift=3.0)``.
Everything else is as small as it gets, after diffusers' ``StableDiffusion3PipelineFastTests``.

The weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the folder is
identical on every run.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextModelWithProjection, CLIPTokenizer

from tests.families.parts import brighten, clip_config, seeded_save, t5_encoder
from tests.families.tokenizers import clip_tokenizer, t5_tokenizer

CLIP_TOKENS = 77
T5_TOKENS = 256
"""The pipeline's ``max_sequence_length`` default, and ``tokenizer_3.model_max_length`` here."""
VAE_SCALE = 8
PATCH_SIZE = 2
TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest size that runs (one 2×2 latent patch: multiple of VAE 8 × patch 2)."""
TINY_WIDE: tuple[int, int] = (32, 16)
DEFAULT_SIZE = 64
"""The pipeline's default image side: transformer ``sample_size`` 8 × VAE scale factor 8."""

HIDDEN_1 = 16  # CLIP ViT-L: 768
HIDDEN_2 = 32  # OpenCLIP ViT-bigG: 1280
T5_WIDTH = 64  # T5 v1.1 XXL: 4096 (≥ HIDDEN_1 + HIDDEN_2, as 4096 ≥ 2048)


def _clip(tokenizer: CLIPTokenizer, hidden_size: int) -> CLIPTextModelWithProjection:
    return CLIPTextModelWithProjection(
        clip_config(tokenizer, hidden_size, projection_dim=hidden_size, hidden_act="gelu")
    )


def _components() -> dict[str, object]:
    tokenizer = clip_tokenizer(CLIP_TOKENS)
    tokenizer_2 = clip_tokenizer(CLIP_TOKENS)
    tokenizer_2.pad_token = "!"  # as SD3's (OpenCLIP bigG's) tokenizer_2
    tokenizer_3 = t5_tokenizer(T5_TOKENS)
    transformer = SD3Transformer2DModel(
        sample_size=DEFAULT_SIZE // VAE_SCALE,
        patch_size=PATCH_SIZE,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=T5_WIDTH,
        caption_projection_dim=32,  # = heads × head dim
        pooled_projection_dim=HIDDEN_1 + HIDDEN_2,
        pos_embed_max_size=64,  # up to 1024 px
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=4,
        sample_size=DEFAULT_SIZE,
        scaling_factor=1.5305,
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    brighten(vae)
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": _clip(tokenizer, HIDDEN_1),
        "text_encoder_2": _clip(tokenizer_2, HIDDEN_2),
        "text_encoder_3": t5_encoder(tokenizer_3, T5_WIDTH),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "tokenizer_3": tokenizer_3,
        "scheduler": FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
    }


def build_sd3(path: Path) -> Path:
    """Build the tiny random SD3 pipeline, ``save_pretrained`` it into ``path`` and return ``path``."""
    return seeded_save(lambda: StableDiffusion3Pipeline(**_components()), path)
