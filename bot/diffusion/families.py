"""Model families: what differs between SD 1.x, SDXL, SD 3, FLUX.1, Flux.2, Qwen-Image, Z-Image, PixArt-Σ, Sana.

A family is data plus a few small hooks, recognised from the pipeline's class (and, for variants,
its config), never from the model's name:

* its **preset** (steps, guidance) and what "guidance" means for it (:class:`Guidance`);
* whether and how it takes a **negative prompt** (:class:`NegativeWay`);
* its **size multiple** and a sensible list of sizes;
* which **tokenizer** reads a prompt longest and how many tokens it keeps (the "words cut" notice);
* how to turn its latents into a cheap **preview** (published latent→RGB factors; packed latents
  unpacked first);
* what ``torch.compile`` wraps (``unet`` or ``transformer``) and whether the UNet-only speed options
  (attention processors, fused q/k/v, channels-last) apply.

:func:`identify` picks the family of a loaded pipeline, :func:`read_family` that of a model id or
folder without loading any weights (the bot of a Redis backend, which never loads the model).
Unknown pipelines get :data:`GENERIC`: the pipeline's own defaults, a negative prompt only when its
``__call__`` takes one, and no preview — and the log says so.

torch is imported inside the hooks that need it; importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class Guidance(enum.StrEnum):
    """What the guidance number does for a family."""

    CFG = "classifier-free"
    """``guidance_scale``: classifier-free guidance; the negative prompt steers it (when above the threshold)."""
    DISTILLED = "distilled"
    """``guidance_scale`` is an input of the model (FLUX.1-dev, Flux.2-dev): no second pass, no negative."""
    TRUE_CFG = "true-cfg"
    """``true_cfg_scale`` (Qwen-Image): classifier-free guidance against the negative prompt (" " when none)."""
    NONE = "none"
    """Step-distilled models (FLUX.1-schnell, Turbo, LCM, Klein): the number is not used."""


class NegativeWay(enum.StrEnum):
    """How a family takes a negative prompt."""

    ARGUMENT = "negative_prompt"
    """The ``negative_prompt`` argument, used when classifier-free guidance runs."""
    TRUE_CFG = "true_cfg_scale"
    """``negative_prompt`` with ``true_cfg_scale`` > 1 (FLUX.1): a second pass, about twice the time."""
    NONE = "none"
    """No way to pass one (Flux.2): members who give one are told."""


SizeSpec = tuple[str, int, int]
"""(name, width, height)."""

SD_SIZES: tuple[SizeSpec, ...] = (("square", 512, 512), ("portrait", 512, 768), ("landscape", 768, 512))
MEGAPIXEL_SIZES: tuple[SizeSpec, ...] = (("square", 1024, 1024), ("portrait", 832, 1216), ("landscape", 1216, 832))

# Latent → RGB factors, applied to the latents the denoising loop works on (already scaled and
# shifted by the VAE's factors). SD 1.x: A1111's "cheap approximation"; SDXL, SD 3 and FLUX.1:
# the published factors of ComfyUI's latent_formats.py, with their bias.
SD1_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
SDXL_RGB = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_RGB_BIAS = (0.1084, -0.0175, -0.0011)
SD3_RGB = (
    (-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458), (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309), (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669), (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810), (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189),
)  # fmt: skip
SD3_RGB_BIAS = (0.2394, 0.2135, 0.1925)
FLUX_RGB = (
    (-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433), (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115), (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180), (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103), (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778),
)  # fmt: skip
FLUX_RGB_BIAS = (-0.0329, -0.0718, -0.0851)


@dataclass(frozen=True, slots=True)
class LatentColours:
    """A linear latent → RGB map: ``rgb = latents · factors + bias``, in about -1..1."""

    factors: tuple[tuple[float, float, float], ...]
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def channels(self) -> int:
        return len(self.factors)


@dataclass(frozen=True, slots=True)
class Family:
    """Everything seedgrid needs to know about one model family (see the module docstring)."""

    name: str
    """Short id, shown to admins and stored in recipes: sd1, sdxl, sd3, flux-dev, …"""
    label: str
    """What members read: "Stable Diffusion XL"."""
    pipelines: tuple[str, ...]
    """The diffusers text-to-image pipeline classes of this family."""
    steps: int
    guidance: float
    guidance_kind: Guidance
    min_guidance: float = 0.0
    max_guidance: float = 20.0
    negative: NegativeWay = NegativeWay.ARGUMENT
    negative_never_none: bool = False
    """Pass ``""`` rather than None when there is no negative prompt (PixArt-Σ and Sana call ``.lower()`` on it)."""
    cfg_above: float = 1.0
    """Classifier-free guidance (and so the negative prompt) runs only for guidance above this."""
    true_cfg: float = 0.0
    """The ``true_cfg_scale`` that honours a negative prompt (:attr:`NegativeWay.TRUE_CFG` families)."""
    size_multiple: int = 8
    """Width and height of the released models must be multiples of this (VAE factor × patch size)."""
    sizes: tuple[SizeSpec, ...] = SD_SIZES
    prompt_reader: str = "tokenizer"
    """The pipeline attribute of the tokenizer that reads the prompt longest (a folder of the model)."""
    max_sequence_length: int | None = None
    """What the pipeline is called with (and the tokens that reader keeps); None: the tokenizer's own limit."""
    prompt_reserved: int | None = None
    """Tokens of that limit that are not the prompt; None: the specials the tokenizer adds (CLIP 2, T5 1)."""
    chat_template: bool = False
    """The reader wraps the prompt in its chat template first (its prefix then takes tokens too)."""
    colours: LatentColours | None = None
    """Published latent → RGB factors; None: a generic projection (still a useful preview)."""
    packed: bool = False
    """Latents are (batch, tokens, channels·4) during the loop: unpacked (2×2 patches) for a preview."""
    preview: bool = True
    denoiser: str = "unet"
    """What ``torch.compile`` wraps."""
    unet_options: bool = True
    """The UNet speed options apply: attention processors, fused q/k/v, channels-last (4-D weights)."""
    legacy_callback: bool = False
    """Progress through the old ``callback(step, timestep, latents)`` (PixArt-Σ has no callback_on_step_end)."""
    known: bool = True
    image_to_image: bool = False
    """diffusers maps the family to a strength-based image-to-image pipeline (``AutoPipelineForImage2Image``,
    built with ``from_pipe``: the same weights): upscale and vary work on it."""

    @property
    def uses_guidance(self) -> bool:
        return self.guidance_kind is not Guidance.NONE

    def negative_used(self, guidance: float) -> bool:
        """Whether a negative prompt changes the image at this guidance."""
        if self.negative is NegativeWay.NONE:
            return False
        if self.negative is NegativeWay.TRUE_CFG:
            return True
        if self.guidance_kind is Guidance.TRUE_CFG:
            return guidance > 1.0
        if self.guidance_kind is Guidance.CFG:
            return guidance > self.cfg_above
        return False


SD1 = Family(
    image_to_image=True,
    name="sd1",
    label="Stable Diffusion 1.x",
    pipelines=("StableDiffusionPipeline",),
    steps=30,
    guidance=7.5,
    guidance_kind=Guidance.CFG,
    colours=LatentColours(SD1_RGB),
)
SDXL = Family(
    image_to_image=True,
    name="sdxl",
    label="Stable Diffusion XL",
    pipelines=("StableDiffusionXLPipeline",),
    steps=30,
    guidance=5.0,
    guidance_kind=Guidance.CFG,
    sizes=MEGAPIXEL_SIZES,
    colours=LatentColours(SDXL_RGB, SDXL_RGB_BIAS),
)
SD3 = Family(
    image_to_image=True,
    name="sd3",
    label="Stable Diffusion 3",
    pipelines=("StableDiffusion3Pipeline",),
    steps=28,
    guidance=7.0,
    guidance_kind=Guidance.CFG,
    size_multiple=16,
    sizes=MEGAPIXEL_SIZES,
    prompt_reader="tokenizer_3",
    max_sequence_length=256,
    colours=LatentColours(SD3_RGB, SD3_RGB_BIAS),
    denoiser="transformer",
    unet_options=False,
)
FLUX_DEV = Family(
    image_to_image=True,
    name="flux-dev",
    label="FLUX.1 [dev]",
    pipelines=("FluxPipeline",),
    steps=28,
    guidance=3.5,
    guidance_kind=Guidance.DISTILLED,
    max_guidance=10.0,
    negative=NegativeWay.TRUE_CFG,
    true_cfg=4.0,
    size_multiple=16,
    sizes=MEGAPIXEL_SIZES,
    prompt_reader="tokenizer_2",
    max_sequence_length=512,
    colours=LatentColours(FLUX_RGB, FLUX_RGB_BIAS),
    packed=True,
    denoiser="transformer",
    unet_options=False,
)
FLUX_SCHNELL = dataclasses.replace(
    FLUX_DEV,
    name="flux-schnell",
    label="FLUX.1 [schnell]",
    steps=4,
    guidance=0.0,
    guidance_kind=Guidance.NONE,
    max_sequence_length=256,
)
FLUX2 = Family(
    name="flux2",
    label="FLUX.2 [dev]",
    pipelines=("Flux2Pipeline",),
    steps=50,
    guidance=4.0,
    guidance_kind=Guidance.DISTILLED,
    max_guidance=10.0,
    negative=NegativeWay.NONE,
    size_multiple=16,
    sizes=MEGAPIXEL_SIZES,
    max_sequence_length=512,
    chat_template=True,
    packed=True,
    denoiser="transformer",
    unet_options=False,
)
FLUX2_KLEIN = dataclasses.replace(
    FLUX2,
    name="flux2-klein",
    label="FLUX.2 [klein]",
    pipelines=("Flux2KleinPipeline",),
    steps=4,
    guidance=0.0,
    guidance_kind=Guidance.NONE,
)
FLUX2_KLEIN_BASE = dataclasses.replace(
    FLUX2_KLEIN,
    name="flux2-klein-base",
    label="FLUX.2 [klein] base",
    steps=50,
    guidance=4.0,
    guidance_kind=Guidance.CFG,
)
QWEN_IMAGE = Family(
    image_to_image=True,
    name="qwen-image",
    label="Qwen-Image",
    pipelines=("QwenImagePipeline",),
    steps=50,
    guidance=4.0,
    guidance_kind=Guidance.TRUE_CFG,
    max_guidance=10.0,
    size_multiple=16,
    sizes=(("square", 1328, 1328), ("portrait", 928, 1664), ("landscape", 1664, 928)),
    max_sequence_length=512,
    prompt_reserved=0,  # the template's tokens are dropped before the limit applies
    packed=True,
    denoiser="transformer",
    unet_options=False,
)
Z_IMAGE = Family(
    image_to_image=True,
    name="z-image",
    label="Z-Image",
    pipelines=("ZImagePipeline",),
    steps=9,
    guidance=0.0,
    guidance_kind=Guidance.CFG,
    cfg_above=0.0,
    max_guidance=10.0,
    size_multiple=16,
    sizes=MEGAPIXEL_SIZES,
    max_sequence_length=512,
    chat_template=True,
    colours=LatentColours(FLUX_RGB, FLUX_RGB_BIAS),  # the FLUX.1 VAE
    denoiser="transformer",
    unet_options=False,
)
PIXART_SIGMA = Family(
    name="pixart-sigma",
    label="PixArt-Σ",
    pipelines=("PixArtSigmaPipeline",),
    steps=20,
    guidance=4.5,
    guidance_kind=Guidance.CFG,
    negative_never_none=True,
    sizes=MEGAPIXEL_SIZES,
    max_sequence_length=300,
    colours=LatentColours(SDXL_RGB, SDXL_RGB_BIAS),  # the SDXL VAE
    denoiser="transformer",
    unet_options=False,
    legacy_callback=True,
)
SANA = Family(
    name="sana",
    label="Sana",
    pipelines=("SanaPipeline",),
    steps=20,
    guidance=4.5,
    guidance_kind=Guidance.CFG,
    negative_never_none=True,
    size_multiple=32,
    sizes=MEGAPIXEL_SIZES,
    max_sequence_length=300,
    prompt_reserved=2,  # the start token and one of the pipeline's selection
    denoiser="transformer",
    unet_options=False,
)
GENERIC = Family(
    name="generic",
    label="diffusers pipeline",
    pipelines=(),
    steps=30,
    guidance=5.0,
    guidance_kind=Guidance.CFG,
    preview=False,
    denoiser="",
    unet_options=False,
    known=False,
)
"""The fallback for a pipeline class not in :data:`FAMILIES` (its own defaults replace steps and guidance)."""

FAMILIES: tuple[Family, ...] = (SD1, SDXL, SD3, FLUX_DEV, FLUX2, FLUX2_KLEIN, QWEN_IMAGE, Z_IMAGE, PIXART_SIGMA, SANA)
"""Every known family (the variants — schnell, Klein base, LCM — derive from these in :func:`identify`)."""


@dataclass(frozen=True, slots=True)
class PipelineFacts:
    """What :func:`identify` reads: the pipeline class and the few config values that pick a variant."""

    class_name: str
    guidance_embeds: bool | None = None
    """FLUX.1's transformer: True for dev (distilled guidance), False for schnell."""
    distilled: bool | None = None
    """Flux.2 Klein's ``is_distilled``: True for the 4-step model."""
    scheduler: str = ""
    """The scheduler class that will run (an LCM scheduler makes a step-distilled variant)."""
    call_defaults: Mapping[str, Any] = field(default_factory=dict)
    """The pipeline ``__call__``'s defaults (for :data:`GENERIC`)."""


def identify(facts: PipelineFacts) -> Family:
    """The family of a pipeline, from its class and config (never its name)."""
    family = next((f for f in FAMILIES if facts.class_name in f.pipelines), None)
    if family is None:
        log.warning(
            "%s is not a pipeline family seedgrid knows; using its own defaults, no preview, "
            "a negative prompt only if it takes one",
            facts.class_name or "this model",
        )
        steps = facts.call_defaults.get("num_inference_steps")
        guidance = facts.call_defaults.get("guidance_scale")
        negative = NegativeWay.ARGUMENT if "negative_prompt" in facts.call_defaults else NegativeWay.NONE
        return dataclasses.replace(
            GENERIC,
            pipelines=(facts.class_name,),
            steps=steps if isinstance(steps, int) and steps > 0 else GENERIC.steps,
            guidance=float(guidance) if isinstance(guidance, int | float) else GENERIC.guidance,
            guidance_kind=Guidance.CFG if "guidance_scale" in facts.call_defaults else Guidance.NONE,
            negative=negative,
        )
    if family is FLUX_DEV and facts.guidance_embeds is False:
        family = FLUX_SCHNELL
    if family is FLUX2_KLEIN and facts.distilled is False:
        family = FLUX2_KLEIN_BASE
    if facts.scheduler == "LCMScheduler" and family.guidance_kind is Guidance.CFG:
        # LCM (a distilled model, or an LCM-LoRA merged in): a few steps, no classifier-free guidance
        family = dataclasses.replace(
            family, name=f"{family.name}-lcm", label=f"{family.label} (LCM)", steps=4, guidance=1.0
        )
    return family


def facts_of(pipe: Any) -> PipelineFacts:
    """The :class:`PipelineFacts` of a loaded pipeline."""
    transformer = getattr(pipe, "transformer", None)
    embeds = getattr(getattr(transformer, "config", None), "guidance_embeds", None)
    distilled = getattr(pipe.config, "is_distilled", None) if hasattr(pipe, "config") else None
    return PipelineFacts(
        class_name=type(pipe).__name__,
        guidance_embeds=embeds if isinstance(embeds, bool) else None,
        distilled=distilled if isinstance(distilled, bool) else None,
        scheduler=type(getattr(pipe, "scheduler", None)).__name__,
        call_defaults=call_defaults(type(pipe)),
    )


def call_defaults(pipeline_class: type) -> dict[str, Any]:
    """The parameters of a pipeline's ``__call__`` with their defaults (``inspect.Parameter.empty`` if none)."""
    parameters = inspect.signature(pipeline_class.__call__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


def read_family(model_id: str, *, scheduler: str = "") -> Family:
    """The family of a model id or folder, from its ``model_index.json`` (and a component config), no weights.

    Blocking (a small file from the disk or the Hub cache). ``scheduler`` is ``[model] scheduler``
    when the admin swaps it. Raises ``OSError``/``ValueError`` when the model's index cannot be read.
    """
    index = _read_config(model_id, "model_index.json")
    class_name = str(index.get("_class_name", ""))
    embeds: bool | None = None
    distilled = index.get("is_distilled")
    if "transformer" in index:
        try:
            embeds = _read_config(model_id, "transformer/config.json").get("guidance_embeds")
        except (OSError, ValueError):
            embeds = None
    if not scheduler and "scheduler" in index:
        entry = index["scheduler"]
        scheduler = str(entry[1]) if isinstance(entry, list) and len(entry) == 2 else ""
    defaults: dict[str, Any] = {}
    if not any(class_name in f.pipelines for f in FAMILIES):
        # only :data:`GENERIC` reads the defaults: skip importing diffusers for a known family
        import diffusers

        pipeline_class = getattr(diffusers, class_name, None)
        if isinstance(pipeline_class, type):
            defaults = call_defaults(pipeline_class)
    return identify(
        PipelineFacts(
            class_name=class_name,
            guidance_embeds=embeds if isinstance(embeds, bool) else None,
            distilled=distilled if isinstance(distilled, bool) else None,
            scheduler=scheduler,
            call_defaults=defaults,
        )
    )


def _read_config(model_id: str, filename: str) -> dict[str, Any]:
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        path = folder / filename
    else:
        from huggingface_hub import hf_hub_download

        subfolder, _, name = filename.rpartition("/")
        path = Path(hf_hub_download(model_id, name, subfolder=subfolder or None))
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


# --- the pipeline call -------------------------------------------------------------------------


def call_arguments(
    family: Family, accepted: Mapping[str, Any], *, count: int, negative: str, guidance: float
) -> dict[str, Any]:
    """The guidance, negative prompt and sequence-length arguments of one call, as ``family`` takes them.

    ``accepted`` is the pipeline's ``__call__`` parameters (:func:`call_defaults`): an argument it
    does not take is never passed.
    """
    kwargs: dict[str, Any] = {}
    has_negative = bool(negative.strip())
    if family.guidance_kind is Guidance.TRUE_CFG:
        kwargs["true_cfg_scale"] = guidance
        kwargs["negative_prompt"] = [negative if has_negative else " "] * count  # " ": CFG on, no words
    elif family.guidance_kind is Guidance.NONE:
        if "guidance_scale" in accepted:
            kwargs["guidance_scale"] = 0.0
    else:
        kwargs["guidance_scale"] = guidance
    if family.negative is NegativeWay.ARGUMENT and "negative_prompt" in accepted and "negative_prompt" not in kwargs:
        if has_negative:
            kwargs["negative_prompt"] = [negative] * count
        elif family.negative_never_none:
            kwargs["negative_prompt"] = [""] * count
    elif family.negative is NegativeWay.TRUE_CFG and has_negative and "true_cfg_scale" in accepted:
        kwargs["negative_prompt"] = [negative] * count
        kwargs["true_cfg_scale"] = family.true_cfg
    if family.max_sequence_length is not None and "max_sequence_length" in accepted:
        kwargs["max_sequence_length"] = family.max_sequence_length
    return {name: value for name, value in kwargs.items() if name in accepted}


# --- previews ----------------------------------------------------------------------------------


def preview_latents(family: Family, latents: torch.Tensor, width: int, height: int) -> torch.Tensor | None:
    """The in-loop latents as ``(batch, channels, h, w)``, or None when this family shows no preview.

    Packed latents ``(batch, tokens, channels·4)`` are unpacked from their 2×2 patches, the grid's
    aspect taken from the image size; a video-style ``(batch, channels, 1, h, w)`` loses its frame axis.
    """
    if not family.preview:
        return None
    x = latents
    if x.ndim == 5 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim == 3 and family.packed:
        batch, tokens, packed = x.shape
        rows = round(math.sqrt(tokens * height / width))
        columns = tokens // rows if rows else 0
        if rows * columns != tokens or packed % 4:
            raise ValueError(f"cannot unpack latents of shape {tuple(x.shape)} for a {width}×{height} image")
        channels = packed // 4
        x = x.reshape(batch, rows, columns, channels, 2, 2).permute(0, 3, 1, 4, 2, 5)
        x = x.reshape(batch, channels, rows * 2, columns * 2)
    if x.ndim != 4:
        raise ValueError(f"unexpected latents of shape {tuple(latents.shape)} for a {family.name} model")
    return x


def colours_for(family: Family, channels: int) -> LatentColours | None:
    """The family's latent colours when they fit ``channels``, else None (a generic projection)."""
    if family.colours is not None and family.colours.channels == channels:
        return family.colours
    return None
