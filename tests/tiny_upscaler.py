"""A tiny, random, offline ×4 upscaler (``StableDiffusionUpscalePipeline``) for fast tests.

The components are diffusers' own fast test's (tests/pipelines/stable_diffusion_2/test_stable_diffusion_upscale.py):
a 7-channel UNet with class embeddings for the noise level, a three-block VAE (×4), a 32-wide CLIP text encoder,
``DDPMScheduler`` for the low-resolution noise and ``DDIMScheduler`` (v-prediction) for the denoising. The CLIP
tokenizer is written offline, as :mod:`tests.tiny_model` writes it. Deterministic weights (``torch.manual_seed(0)``
inside :func:`torch.random.fork_rng`), written with ``save_pretrained`` so the bot's own loader reads them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from tests.tiny_model import MAX_TOKENS, _tokenizer


def build_tiny_upscaler(path: Path) -> Path:
    """Build the tiny random ×4 upscaler, ``save_pretrained`` it into ``path`` and return ``path``."""
    tokenizer = _tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=7,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            use_linear_projection=True,
            only_cross_attention=(True, True, False),
            num_class_embeds=100,
        )
        torch.manual_seed(0)
        vae = AutoencoderKL(
            block_out_channels=[32, 32, 64],
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
            up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
            latent_channels=4,
            scaling_factor=0.08333,  # the x4 upscaler's own (diffusers warns about, and fixes, any other)
        )
        torch.manual_seed(0)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                hidden_size=32,
                intermediate_size=37,
                layer_norm_eps=1e-05,
                num_attention_heads=4,
                num_hidden_layers=5,
                vocab_size=len(tokenizer),
                max_position_embeddings=MAX_TOKENS,
                hidden_act="gelu",
                projection_dim=512,
            )
        )
        pipe = StableDiffusionUpscalePipeline(
            unet=unet,
            low_res_scheduler=DDPMScheduler(),
            scheduler=DDIMScheduler(prediction_type="v_prediction"),
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            max_noise_level=350,
        )
    pipe.save_pretrained(path)
    return path
