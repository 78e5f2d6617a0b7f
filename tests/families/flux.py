"""Tiny, random, offline FLUX.1 pipelines (``FluxPipeline``) for fast tests.

:func:`build_flux_dev` and :func:`build_flux_schnell` write folders laid out like the Hub's
``black-forest-labs/FLUX.1-dev`` / ``FLUX.1-schnell`` checkpoints (``model_index.json``,
``transformer/``, ``vae/``, ``text_encoder/`` (CLIP), ``text_encoder_2/`` (T5), ``tokenizer/``,
``tokenizer_2/``, ``scheduler/``), so ``AutoPipelineForText2Image.from_pretrained(folder)`` picks
``FluxPipeline`` with no network. The components follow diffusers' own fast test
(``tests/pipelines/flux/test_pipeline_flux.py``) where it keeps things tiny, and the real checkpoints
where the bot's code paths can see it:

* a VAE that downsamples by 8 with 16 latent channels, FLUX's ``scaling_factor``/``shift_factor`` and
  no quant convs; latents are packed 2×2, so sizes are multiples of 16 (``vae_scale_factor * 2``);
* a transformer with ``in_channels = 16 * 4`` (packed latents); ``guidance_embeds=True`` for dev
  (distilled guidance, ``guidance_scale`` is an input of the transformer), ``False`` for schnell;
* a CLIP tokenizer of 77 tokens and a T5 tokenizer of 512 (dev) or 256 (schnell) tokens;
* the schedulers' configs of the two checkpoints (dynamic shifting for dev, a fixed shift of 1 for
  schnell).

Weights come from ``torch.manual_seed(0)`` inside :func:`torch.random.fork_rng`: the same call writes
the same folder every time and leaves the caller's RNG alone.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel

from tests.families.parts import VAE_OUTPUT_GAIN, brighten, clip_config, seeded_save, t5_encoder
from tests.families.tokenizers import clip_tokenizer, t5_tokenizer

TINY_SIZE: tuple[int, int] = (16, 16)
"""(width, height): the smallest image, one 2×2 latent patch = one transformer token."""

TINY_WIDE: tuple[int, int] = (48, 32)
"""(width, height): a non-square size (3×2 tokens) that catches height/width mix-ups."""

SPATIAL_MULTIPLE = 16
"""``pipe.vae_scale_factor * 2``: the VAE downsamples by 8 and the latents are packed 2×2."""

CLIP_MAX_TOKENS = 77
DEV_T5_MAX_TOKENS = 512
SCHNELL_T5_MAX_TOKENS = 256

LATENT_CHANNELS = 16
# FLUX.1's vae/config.json (also used by Z-Image).
FLUX_VAE_SCALING_FACTOR = 0.3611
FLUX_VAE_SHIFT_FACTOR = 0.1159

# FLUX.1-dev's scheduler/scheduler_config.json: the shift depends on the image's token count.
FLUX_DEV_SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
# FLUX.1-schnell's: a fixed shift of 1 (``mu`` is computed by the pipeline but ignored).
FLUX_SCHNELL_SCHEDULER = {**FLUX_DEV_SCHEDULER, "shift": 1.0, "use_dynamic_shifting": False}


HIDDEN = 32
"""Width of both text encoders; the transformer's ``joint_attention_dim`` (T5) and
``pooled_projection_dim`` (CLIP's pooled output)."""


def flux_vae(*, gain: float = VAE_OUTPUT_GAIN) -> AutoencoderKL:
    """FLUX.1's VAE layout (×8, 16 latent channels, no quant convs), as narrow as it gets."""
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=FLUX_VAE_SCALING_FACTOR,
        shift_factor=FLUX_VAE_SHIFT_FACTOR,
    )
    brighten(vae, gain)
    return vae


def _components(*, guidance_embeds: bool, t5_max_length: int, scheduler: dict[str, object]) -> dict[str, object]:
    tokenizer = clip_tokenizer(max_length=CLIP_MAX_TOKENS)
    tokenizer_2 = t5_tokenizer(max_length=t5_max_length)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=LATENT_CHANNELS * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=HIDDEN,
        pooled_projection_dim=HIDDEN,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 4, 8),
    )
    return {
        "transformer": transformer,
        "vae": flux_vae(),
        "text_encoder": CLIPTextModel(clip_config(tokenizer, HIDDEN, projection_dim=HIDDEN, hidden_act="gelu")),
        "text_encoder_2": t5_encoder(tokenizer_2, HIDDEN),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": FlowMatchEulerDiscreteScheduler(**scheduler),
        "image_encoder": None,
        "feature_extractor": None,
    }


def _build(path: Path, **kwargs: object) -> Path:
    return seeded_save(lambda: FluxPipeline(**_components(**kwargs)), path)  # type: ignore[arg-type]


def build_flux_dev(path: Path) -> Path:
    """Build a tiny random FLUX.1-dev-like pipeline (distilled guidance), save it into ``path``, return it.

    Call it with a ``guidance_scale`` (3.5 by default): it is fed to the transformer's guidance
    embedding, not used for classifier-free guidance.
    """
    return _build(path, guidance_embeds=True, t5_max_length=DEV_T5_MAX_TOKENS, scheduler=FLUX_DEV_SCHEDULER)


def build_flux_schnell(path: Path) -> Path:
    """Build a tiny random FLUX.1-schnell-like pipeline (no guidance embedding), save it into ``path``, return it.

    ``guidance_scale`` is ignored by the pipeline (schnell runs with ``guidance_scale=0``); like the
    real checkpoint, ``tokenizer_2.model_max_length`` is 256 (pass ``max_sequence_length=256``).
    """
    return _build(path, guidance_embeds=False, t5_max_length=SCHNELL_T5_MAX_TOKENS, scheduler=FLUX_SCHNELL_SCHEDULER)
