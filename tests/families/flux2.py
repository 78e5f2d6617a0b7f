"""A tiny, random, offline FLUX.2 [klein] pipeline (``Flux2KleinPipeline``) for fast tests.

:func:`build_flux2_klein` writes a folder laid out like ``black-forest-labs/FLUX.2-klein-4B``
(``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/`` (Qwen3), ``tokenizer/``,
``scheduler/``), so ``AutoPipelineForText2Image.from_pretrained(folder)`` picks
``Flux2KleinPipeline`` with no network. It follows diffusers' fast test
(``tests/pipelines/flux2/test_pipeline_flux2_klein.py``), except where the real checkpoint matters
to a caller that passes only the usual arguments:

* the Qwen3 text encoder has 27 layers (of width 16), so the pipeline's default
  ``text_encoder_out_layers=(9, 18, 27)`` works: the prompt embedding stacks those three hidden
  states, hence the transformer's ``joint_attention_dim = 3 * 16``;
* the VAE downsamples by 8 and has 32 latent channels, patchified 2×2 to the transformer's 128 input
  channels, as in FLUX.2; sizes are multiples of 16 (``vae_scale_factor * 2``);
* ``is_distilled=True`` like klein-4B (4-step distilled: ``guidance_scale`` is ignored and there is
  no negative prompt); ``distilled=False`` builds a "klein-base"-like pipeline that runs real CFG
  against an empty prompt when ``guidance_scale > 1``.

Weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the same call writes
the same folder every time and leaves the caller's RNG alone.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
from transformers import Qwen3Config, Qwen3ForCausalLM

from tests.families.parts import brighten, seeded_save
from tests.families.tokenizers import qwen2_tokenizer

TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest image, one 2×2 latent patch = one transformer token."""

TINY_WIDE: tuple[int, int] = (48, 32)
"""(width, height): a non-square size (3×2 tokens) that catches height/width mix-ups."""

SPATIAL_MULTIPLE = 16
"""``pipe.vae_scale_factor * 2``: the VAE downsamples by 8 and the latents are patchified 2×2."""

MAX_TOKENS = 512
LATENT_CHANNELS = 32
TEXT_HIDDEN = 16
TEXT_LAYERS = 27
"""Enough hidden states for the pipeline's default ``text_encoder_out_layers=(9, 18, 27)``."""
TEXT_OUT_LAYERS = 3

# FLUX.2's scheduler config: dynamic shifting (the pipeline computes ``mu`` itself).
FLUX2_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}


def _components() -> dict[str, object]:
    tokenizer = qwen2_tokenizer(max_length=MAX_TOKENS)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN * TEXT_OUT_LAYERS,
        timestep_guidance_channels=256,
        axes_dims_rope=(4, 4, 4, 4),
        guidance_embeds=False,  # klein has no guidance embedding (unlike FLUX.2-dev)
    )
    text_config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=16,
        num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=1,  # 27 layers × 512 padded tokens: one head halves the encoder's time
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=MAX_TOKENS,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vae = AutoencoderKLFlux2(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=32,
    )
    brighten(vae)
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": Qwen3ForCausalLM(text_config),
        "tokenizer": tokenizer,
        "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX2_SCHEDULER),
    }


def build_flux2_klein(path: Path, *, distilled: bool = True) -> Path:
    """Build a tiny random FLUX.2 [klein] pipeline, ``save_pretrained`` it into ``path`` and return ``path``.

    ``distilled=True`` (klein-4B): ``guidance_scale`` is ignored (a warning above 1).
    ``distilled=False`` (klein-base-4B): ``guidance_scale > 1`` runs CFG against an empty prompt.
    """
    return seeded_save(lambda: Flux2KleinPipeline(**_components(), is_distilled=distilled), path)  # type: ignore[arg-type]
