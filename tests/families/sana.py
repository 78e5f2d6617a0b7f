"""A tiny, random, offline Sana pipeline (``SanaPipeline``).

Shaped like Sana 1600M 512px where the bot's code paths care: a linear-attention
``SanaTransformer2DModel`` (patch size 1) over the 32-channel latent of a deep-compression
autoencoder (``AutoencoderDC``) that downsamples by 32 (so sizes are multiples of 32), a Gemma 2
text encoder read up to 300 tokens after the pipeline's default "complex human instruction"
(right padding, which the pipeline sets), and Sana's flow-matching DPM-Solver++ scheduler.

The transformer's ``sample_size`` is 16 (512 px), the smallest the pipeline's resolution binning
knows: the pipeline (``use_resolution_binning=True`` by default, which the bot keeps) runs any
requested size at the nearest of its 512-px aspect-ratio bins (512×512, 384×672, …) and resizes the
images back, so a call costs the same at every size; with ``use_resolution_binning=False`` it runs
at the requested size. To keep a 512-px decode cheap the autoencoder's full-resolution stage has no
blocks, only its output convolution (as in DC-AE's ``in-1.0`` variants). Everything else is as
small as it gets, after diffusers' ``SanaPipelineFastTests``.

The weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the folder is
identical on every run.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderDC, DPMSolverMultistepScheduler, SanaPipeline, SanaTransformer2DModel
from transformers import Gemma2Config, Gemma2Model

from tests.families.parts import VAE_OUTPUT_GAIN, seeded_save
from tests.families.tokenizers import gemma_tokenizer

MAX_TOKENS = 300
"""The pipeline's ``max_sequence_length`` default, and ``tokenizer.model_max_length`` here."""
VAE_SCALE = 32
TINY_SIZE: tuple[int, int] = (32, 32)
"""(width, height): the smallest size that runs with and without resolution binning (one latent pixel)."""
TINY_WIDE: tuple[int, int] = (64, 32)
DEFAULT_SIZE = 512
"""The pipeline's default image side: transformer ``sample_size`` 16 × VAE scale factor 32."""

LATENT_CHANNELS = 32
GEMMA_WIDTH = 16  # Gemma 2 2B: 2304

# Sana's scheduler/scheduler_config.json, minus the bookkeeping keys.
SANA_SCHEDULER = {
    "algorithm_type": "dpmsolver++",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "final_sigmas_type": "zero",
    "flow_shift": 3.0,
    "lower_order_final": True,
    "num_train_timesteps": 1000,
    "prediction_type": "flow_prediction",
    "solver_order": 2,
    "solver_type": "midpoint",
    "steps_offset": 0,
    "timestep_spacing": "linspace",
    "use_flow_sigmas": True,
}


def _components() -> dict[str, object]:
    tokenizer = gemma_tokenizer(MAX_TOKENS)
    transformer = SanaTransformer2DModel(
        sample_size=DEFAULT_SIZE // VAE_SCALE,
        patch_size=1,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        num_cross_attention_heads=2,
        cross_attention_head_dim=8,
        cross_attention_dim=16,  # = heads × head dim
        caption_channels=GEMMA_WIDTH,
        mlp_ratio=2.5,
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    vae = AutoencoderDC(  # six stages: downsamples by 2**5 = 32
        in_channels=3,
        latent_channels=LATENT_CHANNELS,
        attention_head_dim=4,
        encoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        decoder_block_types=("ResBlock",) * 3 + ("EfficientViTBlock",) * 3,
        encoder_block_out_channels=(4, 4, 8, 8, 16, 32),
        decoder_block_out_channels=(4, 4, 8, 8, 16, 32),
        encoder_layers_per_block=(0, 1, 1, 1, 1, 1),
        decoder_layers_per_block=(0, 1, 1, 1, 1, 1),
        encoder_qkv_multiscales=((),) * 3 + ((5,),) * 3,
        decoder_qkv_multiscales=((),) * 3 + ((5,),) * 3,
        upsample_block_type="interpolate",
        downsample_block_type="Conv",
        decoder_norm_types=("batch_norm",) * 3 + ("rms_norm",) * 3,
        decoder_act_fns=("relu",) * 3 + ("silu",) * 3,
        scaling_factor=0.41407,
    )
    with torch.no_grad():  # no full-resolution blocks: the output convolution is an upsampling block's
        vae.decoder.conv_out.conv.weight.mul_(VAE_OUTPUT_GAIN)
    gemma_config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=GEMMA_WIDTH,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": Gemma2Model(gemma_config),
        "tokenizer": tokenizer,
        "scheduler": DPMSolverMultistepScheduler(**SANA_SCHEDULER),
    }


def build_sana(path: Path) -> Path:
    """Build the tiny random Sana pipeline, ``save_pretrained`` it into ``path`` and return ``path``."""
    return seeded_save(lambda: SanaPipeline(**_components()), path)
