"""The model's safety checker (SD 1.x has one), run by seedgrid rather than by diffusers.

diffusers' own run blacks out what the checker flags; the bot wants the flags *and* the
originals, so that the channel's policy (:func:`bot.imaging.flagged.apply_policy`: allow, blur,
spoiler) decides what members see. So the pipeline is called with its checker detached
(:func:`without_builtin_checker`), and :func:`run_checker` gives the verdicts on a copy of the images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)


def has_checker(pipe: Any) -> bool:
    """Whether ``pipe`` has a safety checker we can run: the checker and its feature extractor."""
    return getattr(pipe, "safety_checker", None) is not None and getattr(pipe, "feature_extractor", None) is not None


def keep_or_drop_checker(pipe: Any, *, wanted: bool) -> str:
    """Drop the model's checker unless ``wanted`` (``[safety] checker``), before it reaches the device.

    Returns its state, for the load log: ``on``, ``off`` or ``none in this model``.
    """
    if getattr(pipe, "safety_checker", None) is None:
        return "none in this model"
    if not wanted:
        pipe.safety_checker = None
        return "off"
    if not has_checker(pipe):
        log.warning("the model's safety checker has no feature extractor; images will not be checked")
        return "off"
    return "on"


@contextmanager
def without_builtin_checker(pipe: Any) -> Iterator[None]:
    """Run ``pipe`` with its ``safety_checker`` detached, so that diffusers blacks nothing out.

    Safe because one thread owns a :class:`bot.diffusion.pipeline.Pipeline` (the local backend's
    worker thread for its device) and :meth:`~bot.diffusion.pipeline.Pipeline.generate` holds the
    pipeline's lock around this. diffusers records components in the pipeline's config, and setting
    one to None and back leaves ``(None, None)`` there, so the config entry is put back as well.
    """
    checker = getattr(pipe, "safety_checker", None)
    if checker is None:
        yield
        return
    entry = pipe.config.get("safety_checker")
    pipe.safety_checker = None
    try:
        yield
    finally:
        pipe.safety_checker = checker
        if entry is not None:
            pipe.register_to_config(safety_checker=entry)


def run_checker(checker: Any, feature_extractor: Any, images: list[Image.Image]) -> list[bool]:
    """The SD safety checker's verdict on each image, as diffusers' ``run_safety_checker`` gets it.

    The checker zeroes what it flags in the array it is given: it gets a copy. (It also logs
    "A black image will be returned instead"; here the originals are kept.)
    """
    import numpy as np

    features = feature_extractor(images, return_tensors="pt")
    clip_input = features.pixel_values.to(device=checker.device, dtype=checker.dtype)
    copy = np.stack([np.asarray(image) for image in images])
    _, flags = checker(images=copy, clip_input=clip_input)
    return [bool(flag) for flag in flags]
