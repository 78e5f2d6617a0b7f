"""A tiny, random, offline PixArt-Σ pipeline (``PixArtSigmaPipeline``).

Shaped like PixArt-Σ XL 2 where the bot's code paths care: a ``PixArtTransformer2DModel``
(``ada_norm_single``, patch size 2, learned sigma: 8 output channels for 4 latent ones, no
additional size conditions) over the SDXL VAE's shape (downsamples by 8, 4 channels), a T5 encoder
read up to 300 tokens, and PixArt's DPM-Solver++ scheduler.

The transformer's ``sample_size`` is 32 (256 px), one of the four the pipeline's resolution
binning knows: the pipeline (``use_resolution_binning=True`` by default, which the bot keeps) runs
any requested size at the nearest of its 256-px aspect-ratio bins (256×256, 192×320, …) and resizes
the images back, so a call costs the same at every size; with ``use_resolution_binning=False`` it
runs at the requested size. Everything else is as small as it gets, after diffusers'
``PixArtSigmaPipelineFastTests``.

The weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the folder is
identical on every run.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

from tests.families.parts import brighten, seeded_save, t5_encoder
from tests.families.tokenizers import t5_tokenizer

MAX_TOKENS = 300
"""The pipeline's ``max_sequence_length`` default, and ``tokenizer.model_max_length`` here."""
VAE_SCALE = 8
PATCH_SIZE = 2
TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest size that runs with and without resolution binning (VAE 8 × patch 2)."""
TINY_WIDE: tuple[int, int] = (32, 16)
DEFAULT_SIZE = 256
"""The pipeline's default image side: transformer ``sample_size`` 32 × VAE scale factor 8."""

T5_WIDTH = 32  # T5 v1.1 XXL: 4096

# PixArt-Σ's scheduler/scheduler_config.json, minus the bookkeeping keys.
PIXART_SCHEDULER = {
    "algorithm_type": "dpmsolver++",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "timestep_spacing": "linspace",
    "use_karras_sigmas": False,
}


def _components() -> dict[str, object]:
    tokenizer = t5_tokenizer(MAX_TOKENS)
    transformer = PixArtTransformer2DModel(
        sample_size=DEFAULT_SIZE // VAE_SCALE,
        patch_size=PATCH_SIZE,
        in_channels=4,
        out_channels=8,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,  # = heads × head dim
        caption_channels=T5_WIDTH,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
        use_additional_conditions=False,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=DEFAULT_SIZE,
        scaling_factor=0.13025,
    )
    brighten(vae)
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": t5_encoder(tokenizer, T5_WIDTH),
        "tokenizer": tokenizer,
        "scheduler": DPMSolverMultistepScheduler(**PIXART_SCHEDULER),
    }


def build_pixart_sigma(path: Path) -> Path:
    """Build the tiny random PixArt-Σ pipeline, ``save_pretrained`` it into ``path`` and return ``path``."""
    return seeded_save(lambda: PixArtSigmaPipeline(**_components()), path)
