"""An NSFW check for the model families that ship no safety checker: an image classifier.

Only SD 1.x has a built-in safety checker (:mod:`bot.diffusion.checker`). For the others seedgrid
runs an image-classification model through transformers (``transformers.pipeline("image-classification")``),
by default the Hub's ``Falconsai/nsfw_image_detection`` (labels ``normal`` and ``nsfw``). An image
is flagged when the summed score of the configured labels reaches the threshold.

Loading and running block (seconds to load, milliseconds to tens of milliseconds per batch): they
belong to the device's worker thread, never an event loop. The classifier runs on the model's device.

transformers and torch are imported inside the functions that need them, so importing this module
stays cheap.

transformers 5 notes (checked on 5.24):

* a list given to the pipeline runs *one forward per image* unless ``batch_size`` is given:
  :meth:`ImageClassifier.flags` passes ``batch_size=len(images)`` so a grid is one forward;
* ``top_k=None`` does not mean "all labels": the pipeline treats None as "not given" and keeps its
  default of 5, so :meth:`ImageClassifier.flags` asks for ``top_k`` = the model's number of labels;
* a path that does not exist is taken for a Hub repo id and fails with "Repo id must be in the
  form ..."; :meth:`ImageClassifier.load` checks local-looking ids first for a clearer message.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Falconsai/nsfw_image_detection"
DEFAULT_LABELS = ("nsfw",)
DEFAULT_THRESHOLD = 0.5


def _looks_like_path(model_id: str) -> bool:
    """Whether ``model_id`` can only be a local folder: a Hub id is ``name`` or ``namespace/name``."""
    return (
        Path(model_id).expanduser().is_absolute()
        or model_id.startswith((".", "~"))
        or model_id.count("/") > 1
        or "\\" in model_id
    )


def _match_labels(wanted: tuple[str, ...], model_labels: list[str], model_id: str) -> tuple[str, ...]:
    """The model's labels that match ``wanted`` (case-insensitively), in the model's spelling.

    Raises ``ValueError`` naming both lists when none matches; warns about those that do not.
    """
    folded = {label.casefold() for label in wanted}
    matched = tuple(label for label in model_labels if label.casefold() in folded)
    if not matched:
        raise ValueError(
            f"image classifier {model_id!r}: none of the labels {list(wanted)} is one of the model's labels "
            f"{model_labels} (matched case-insensitively)"
        )
    known = {label.casefold() for label in model_labels}
    missing = [label for label in wanted if label.casefold() not in known]
    if missing:
        log.warning(
            "image classifier %s: labels %s are not among the model's labels %s; ignored",
            model_id,
            missing,
            model_labels,
        )
    return matched


class ImageClassifier:
    """An image-classification pipeline and the rule that turns its scores into NSFW flags."""

    def __init__(self, pipe: Any, *, model_id: str, labels: tuple[str, ...], threshold: float) -> None:
        # `pipe` is a transformers ImageClassificationPipeline (typed Any: transformers is imported lazily).
        self._pipe = pipe
        self._num_labels = len(pipe.model.config.id2label)
        self._folded = frozenset(label.casefold() for label in labels)
        self.model_id = model_id
        self.labels = labels
        """The model's labels whose scores are summed, in the model's spelling."""
        self.threshold = threshold

    @classmethod
    def load(cls, model_id: str, *, labels: tuple[str, ...], threshold: float, device: str) -> ImageClassifier:
        """Load ``model_id`` (a Hub id or a ``save_pretrained`` folder) onto ``device``. Blocking.

        ``labels`` are matched case-insensitively against the model's ``id2label``; ``device`` is a
        torch device string (``cpu``, ``cuda``, ``cuda:N``, ``mps``), already resolved. Raises
        ``ValueError`` for bad settings or when none of ``labels`` is a label of the model, and
        ``FileNotFoundError`` when ``model_id`` is a local path that does not exist.
        """
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ValueError(f"image classifier {model_id!r}: need at least one non-empty label, got {labels!r}")
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"image classifier {model_id!r}: threshold must be a positive number, got {threshold!r}")
        source = model_id
        if _looks_like_path(model_id):
            source = str(Path(model_id).expanduser())
            if not Path(source).is_dir():
                raise FileNotFoundError(f"image classifier {model_id!r}: no such directory")

        import torch
        import transformers

        log.info("loading image classifier %s (device %s)", model_id, device)
        start = time.perf_counter()
        # float32 whatever the image model's dtype: the classifier is small and its scores are thresholded.
        pipe: Any = transformers.pipeline("image-classification", model=source, device=device, dtype=torch.float32)
        id2label = pipe.model.config.id2label
        model_labels = [str(id2label[i]) for i in sorted(id2label)]
        matched = _match_labels(labels, model_labels, model_id)
        classifier = cls(pipe, model_id=model_id, labels=matched, threshold=threshold)
        log.info("loaded %s in %.1f s on %s", classifier.description, time.perf_counter() - start, device)
        return classifier

    @property
    def description(self) -> str:
        """For logs: ``classifier Falconsai/nsfw_image_detection (nsfw >= 0.5)``."""
        return f"classifier {self.model_id} ({' + '.join(self.labels)} >= {self.threshold:g})"

    def scores(self, images: list[Image.Image]) -> list[float]:
        """The summed score of :attr:`labels` for each image, in one batched forward. Blocking."""
        if not images:
            return []
        # batch_size: without it the pipeline runs one forward per image. top_k: None would mean 5.
        results = self._pipe(list(images), batch_size=len(images), top_k=self._num_labels)
        return [
            math.fsum(float(entry["score"]) for entry in result if str(entry["label"]).casefold() in self._folded)
            for result in results
        ]

    def flags(self, images: list[Image.Image]) -> list[bool]:
        """Whether each image is flagged (its score ≥ :attr:`threshold`), in one batched forward. Blocking."""
        return [score >= self.threshold for score in self.scores(images)]
