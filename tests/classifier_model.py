"""A tiny, random, offline image classifier shaped like ``Falconsai/nsfw_image_detection``, for fast tests.

:func:`build_tiny_classifier` writes a ``save_pretrained`` folder (``config.json``,
``model.safetensors``, ``preprocessor_config.json``) that ``transformers.pipeline("image-classification",
model=folder)`` loads with no network: a ViT with ``id2label={0: "normal", 1: "nsfw"}`` and a ViT
image processor, like the Hub detector, only 32×32 pixels, 2 layers of width 32.

The verdict does not depend on the image: the classifier head's weights are zero and its bias
alone sets the logits, so the winning label scores exactly :data:`WINNER_SCORE` (softmax of the
bias) for every image, and the loser ``1 - WINNER_SCORE``. That leaves room to test thresholds
on both sides of the score. The backbone comes from ``torch.manual_seed(0)`` inside
:func:`torch.random.fork_rng`, so the folder is identical on every run and the caller's RNG is untouched.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

IMAGE_SIZE = 32
LABELS = ("normal", "nsfw")
WINNER_SCORE = 0.9
"""The winning label's probability for any image: ``nsfw`` with ``flags=True``, ``normal`` without."""


def build_tiny_classifier(path: Path, *, flags: bool, labels: tuple[str, ...] = LABELS) -> Path:
    """Write the tiny classifier to ``path`` (created if need be) and return ``path``.

    With ``flags`` every image scores :data:`WINNER_SCORE` for the last label (``nsfw``); without,
    for the first (``normal``). The other labels share ``1 - WINNER_SCORE`` equally (a model with
    more than 5 labels tests that a label outside the pipeline's default top 5 still counts).
    """
    if len(labels) < 2:
        raise ValueError(f"need at least two labels, got {labels!r}")
    # softmax([gap, 0, ..., 0]) gives the winner WINNER_SCORE and each of the n - 1 others (1 - WINNER_SCORE) / (n - 1)
    gap = math.log(WINNER_SCORE * (len(labels) - 1) / (1 - WINNER_SCORE))
    config = ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[len(labels) - 1 if flags else 0] = gap
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    # The PIL processor (transformers 5 keeps ViTImageProcessor for torchvision); both save as "ViTImageProcessor".
    ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(path)
    return path
