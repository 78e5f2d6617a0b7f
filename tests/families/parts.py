"""What the tiny family builders share: seeded building, a brighter VAE, the CLIP and T5 text encoders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPTextConfig, T5Config, T5EncoderModel

VAE_OUTPUT_GAIN = 2.0
"""A random VAE decoder's output hovers near zero, i.e. flat mid-grey images. Scaling its last
convolution spreads the pixels over the whole 0..255 range so image comparisons mean something."""


def seeded_save(make: Callable[[], Any], path: Path) -> Path:
    """``make()`` a pipeline with weights from ``torch.manual_seed(0)`` (the caller's RNG left alone),
    ``save_pretrained`` it into ``path`` and return ``path``: the same call writes the same folder."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe = make()
    pipe.save_pretrained(path)
    return path


def brighten(vae: Any, gain: float = VAE_OUTPUT_GAIN) -> Any:
    """``vae`` with its decoder's last convolution scaled by ``gain`` (see :data:`VAE_OUTPUT_GAIN`)."""
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(gain)
    return vae


def clip_config(tokenizer: Any, hidden_size: int, **extra: Any) -> CLIPTextConfig:
    """A two-layer CLIP text encoder's config for ``tokenizer`` (``extra``: projection_dim, hidden_act, …)."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def t5_encoder(tokenizer: Any, width: int) -> T5EncoderModel:
    """A two-layer T5 v1.1 encoder (gated-gelu, like the t5-v1_1-xxl of SD 3, FLUX.1 and PixArt-Σ)."""
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=width,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config)
