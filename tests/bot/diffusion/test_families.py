"""The family layer's data and hooks, without loading a model: identification, call arguments, previews."""

from __future__ import annotations

import logging

import pytest
import torch

from bot.diffusion.families import (
    FAMILIES,
    FLUX2_KLEIN,
    FLUX_DEV,
    FLUX_SCHNELL,
    PIXART_SIGMA,
    QWEN_IMAGE,
    SD1,
    SDXL,
    Z_IMAGE,
    Guidance,
    PipelineFacts,
    call_arguments,
    colours_for,
    identify,
    preview_latents,
)

SD_CALL = {"negative_prompt": None, "guidance_scale": 7.5, "num_inference_steps": 50}
FLUX_CALL = {"negative_prompt": None, "true_cfg_scale": 1.0, "guidance_scale": 3.5, "max_sequence_length": 512}


def test_every_family_is_found_from_its_pipeline_class() -> None:
    for family in FAMILIES:
        for name in family.pipelines:
            assert identify(PipelineFacts(class_name=name)) is family


def test_variants_come_from_the_config_not_the_name() -> None:
    assert identify(PipelineFacts("FluxPipeline", guidance_embeds=True)) is FLUX_DEV
    assert identify(PipelineFacts("FluxPipeline", guidance_embeds=False)) is FLUX_SCHNELL
    assert identify(PipelineFacts("Flux2KleinPipeline", distilled=True)) is FLUX2_KLEIN
    assert identify(PipelineFacts("Flux2KleinPipeline", distilled=False)).guidance_kind is Guidance.CFG
    lcm = identify(PipelineFacts("StableDiffusionXLPipeline", scheduler="LCMScheduler"))
    assert (lcm.name, lcm.steps, lcm.guidance) == ("sdxl-lcm", 4, 1.0)


def test_an_unknown_pipeline_gets_its_own_defaults_and_no_preview(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.families"):
        family = identify(
            PipelineFacts("BrandNewPipeline", call_defaults={"num_inference_steps": 12, "guidance_scale": 2.0})
        )
    assert "BrandNewPipeline is not a pipeline family seedgrid knows" in caplog.text
    assert (family.known, family.preview, family.steps, family.guidance) == (False, False, 12, 2.0)
    assert family.negative.value == "none"  # its __call__ takes none
    assert not family.negative_used(7.0)
    assert preview_latents(family, torch.zeros(1, 4, 8, 8), 64, 64) is None


def test_call_arguments_follow_each_family() -> None:
    assert call_arguments(SD1, SD_CALL, count=2, negative="", guidance=7.5) == {"guidance_scale": 7.5}
    assert call_arguments(SD1, SD_CALL, count=2, negative="fog", guidance=7.5) == {
        "guidance_scale": 7.5,
        "negative_prompt": ["fog", "fog"],
    }
    pixart = {"negative_prompt": "", "guidance_scale": 4.5, "max_sequence_length": 300}
    assert call_arguments(PIXART_SIGMA, pixart, count=1, negative="", guidance=4.5)["negative_prompt"] == [""]
    assert call_arguments(FLUX_DEV, FLUX_CALL, count=1, negative="", guidance=3.5) == {
        "guidance_scale": 3.5,
        "max_sequence_length": 512,
    }
    honoured = call_arguments(FLUX_DEV, FLUX_CALL, count=1, negative="fog", guidance=3.5)
    assert honoured["negative_prompt"] == ["fog"] and honoured["true_cfg_scale"] == FLUX_DEV.true_cfg
    assert call_arguments(FLUX_SCHNELL, FLUX_CALL, count=1, negative="", guidance=3.5)["guidance_scale"] == 0.0
    qwen = {"negative_prompt": None, "true_cfg_scale": 4.0, "guidance_scale": None, "max_sequence_length": 512}
    assert call_arguments(QWEN_IMAGE, qwen, count=2, negative="", guidance=5.0) == {
        "true_cfg_scale": 5.0,
        "negative_prompt": [" ", " "],  # classifier-free guidance needs a negative: an empty one
        "max_sequence_length": 512,
    }
    klein = {"guidance_scale": 4.0, "max_sequence_length": 512}  # no negative_prompt argument at all
    assert "negative_prompt" not in call_arguments(FLUX2_KLEIN, klein, count=1, negative="fog", guidance=0.0)


def test_when_a_negative_prompt_is_used() -> None:
    assert SD1.negative_used(7.5) and not SD1.negative_used(1.0)  # CFG runs above 1
    assert Z_IMAGE.negative_used(0.5) and not Z_IMAGE.negative_used(0.0)  # Z-Image: above 0
    assert FLUX_DEV.negative_used(3.5)  # through true CFG
    assert not FLUX2_KLEIN.negative_used(4.0)
    assert QWEN_IMAGE.negative_used(4.0) and not QWEN_IMAGE.negative_used(1.0)


def test_packed_latents_are_unpacked_for_a_preview() -> None:
    """FLUX.1 packs (B, C, H, W) latents into 2×2 patches: (B, H/2·W/2, C·4). The preview unpacks them."""
    from diffusers import FluxPipeline

    latents = torch.randn(2, 16, 4, 6)
    packed = FluxPipeline._pack_latents(latents, 2, 16, 4, 6)
    unpacked = preview_latents(FLUX_DEV, packed, width=48, height=32)
    assert unpacked is not None and torch.equal(unpacked, latents)
    assert colours_for(FLUX_DEV, 16) is FLUX_DEV.colours
    assert colours_for(FLUX_DEV, 4) is None  # a generic projection rather than wrong factors


def test_latents_that_do_not_fit_the_image_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot unpack"):
        preview_latents(FLUX_DEV, torch.zeros(1, 7, 64), width=64, height=64)
    assert preview_latents(SDXL, torch.zeros(1, 4, 8, 8), 64, 64) is not None
