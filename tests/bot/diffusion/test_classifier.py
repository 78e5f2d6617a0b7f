"""The NSFW image classifier (``bot/diffusion/classifier.py``), on tiny random ViT classifiers saved to disk
and loaded back through ``transformers.pipeline``.

The tiny models (tests/classifier_model.py) give the same scores to every image: 0.9 for ``nsfw``
(the "flagging" model) or 0.9 for ``normal`` (the "clean" model), the rest to the other label(s).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from bot.diffusion.classifier import ImageClassifier
from tests.classifier_model import WINNER_SCORE, build_tiny_classifier

LOSER_SCORE = 1 - WINNER_SCORE
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def flagging_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("flagging"), flags=True)


@pytest.fixture(scope="module")
def clean_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("clean"), flags=False)


def load(model: Path, labels: tuple[str, ...] = ("nsfw",), threshold: float = 0.5) -> ImageClassifier:
    return ImageClassifier.load(str(model), labels=labels, threshold=threshold, device="cpu")


def tiles(count: int = 4) -> list[Image.Image]:
    """``count`` different 64×64 RGB images, like a grid's tiles."""
    return [Image.new("RGB", (64, 64), (60 * i % 256, 90 * i % 256, 200)) for i in range(count)]


@pytest.fixture
def counted(flagging_model: Path) -> tuple[ImageClassifier, list[int]]:
    """A fresh classifier and the batch size of each forward of its model (a forward hook: nothing is replaced)."""
    classifier = load(flagging_model)
    batches: list[int] = []

    def record(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, object], output: object) -> None:
        pixel_values = kwargs["pixel_values"]
        assert isinstance(pixel_values, torch.Tensor)
        batches.append(pixel_values.shape[0])

    classifier._pipe.model.register_forward_hook(record, with_kwargs=True)
    return classifier, batches


# --- verdicts ---------------------------------------------------------------------------------


def test_flagging_model_flags_every_image(flagging_model: Path) -> None:
    classifier = load(flagging_model)
    assert classifier.flags(tiles()) == [True] * 4
    assert classifier.scores(tiles()) == pytest.approx([WINNER_SCORE] * 4, abs=TOLERANCE)


def test_clean_model_flags_nothing(clean_model: Path) -> None:
    classifier = load(clean_model)
    assert classifier.flags(tiles()) == [False] * 4
    # "nsfw" is not the top label here, and still gets its score
    assert classifier.scores(tiles()) == pytest.approx([LOSER_SCORE] * 4, abs=TOLERANCE)


@pytest.mark.parametrize(
    ("threshold", "flagged"),
    [(WINNER_SCORE - 1e-4, True), (WINNER_SCORE + 1e-4, False), (0.999999, False), (1.0, False)],
)
def test_threshold_is_respected(flagging_model: Path, threshold: float, flagged: bool) -> None:
    assert load(flagging_model, threshold=threshold).flags(tiles(2)) == [flagged] * 2


def test_a_low_threshold_flags_a_label_outside_the_top_1(clean_model: Path) -> None:
    assert load(clean_model, threshold=LOSER_SCORE - 1e-4).flags(tiles(2)) == [True] * 2


def test_labels_match_case_insensitively(flagging_model: Path) -> None:
    classifier = load(flagging_model, labels=("NSFW",))
    assert classifier.labels == ("nsfw",)
    assert classifier.flags(tiles(2)) == [True] * 2


def test_several_labels_are_summed(clean_model: Path) -> None:
    summed = load(clean_model, labels=("Normal", "nsfw"), threshold=0.999)
    assert summed.scores(tiles(2)) == pytest.approx([1.0, 1.0], abs=TOLERANCE)
    assert summed.flags(tiles(2)) == [True] * 2
    assert load(clean_model, labels=("nsfw",), threshold=0.999).flags(tiles(2)) == [False] * 2


def test_a_label_outside_the_pipelines_default_top_5_counts(tmp_path: Path) -> None:
    # 7 labels, "nsfw" last and tied with 5 others at 0.1 / 6: top_k=None (= 5 in transformers 5) would drop it
    labels = ("normal", "drawing", "hentai", "neutral", "porn", "sexy", "nsfw")
    model = build_tiny_classifier(tmp_path / "seven", flags=False, labels=labels)
    classifier = load(model, threshold=LOSER_SCORE / 6 - 1e-4)
    assert classifier.scores(tiles(2)) == pytest.approx([LOSER_SCORE / 6] * 2, abs=TOLERANCE)
    assert classifier.flags(tiles(2)) == [True] * 2


def test_unknown_labels_are_refused_naming_both_lists(flagging_model: Path) -> None:
    with pytest.raises(ValueError, match="none of the labels") as error:
        load(flagging_model, labels=("porn", "hentai"))
    for name in ("porn", "hentai", "normal", "nsfw"):
        assert repr(name) in str(error.value)


def test_some_unknown_labels_are_ignored_with_a_warning(flagging_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.classifier"):
        classifier = load(flagging_model, labels=("nsfw", "porn"))
    assert classifier.labels == ("nsfw",)
    assert "'porn'" in caplog.text
    assert classifier.flags(tiles(1)) == [True]


@pytest.mark.parametrize("labels", [(), ("",)])
def test_empty_labels_are_refused(flagging_model: Path, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="at least one non-empty label"):
        load(flagging_model, labels=labels)


@pytest.mark.parametrize("threshold", [0.0, -0.5, float("nan"), float("inf")])
def test_bad_thresholds_are_refused(flagging_model: Path, threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        load(flagging_model, threshold=threshold)


def test_description_names_model_labels_and_threshold(flagging_model: Path) -> None:
    assert load(flagging_model).description == f"classifier {flagging_model} (nsfw >= 0.5)"
    described = load(flagging_model, labels=("NSFW", "normal"), threshold=0.75).description
    assert described == f"classifier {flagging_model} (normal + nsfw >= 0.75)"


# --- batching and inputs ----------------------------------------------------------------------


def test_a_grid_is_one_batched_forward(counted: tuple[ImageClassifier, list[int]]) -> None:
    classifier, batches = counted
    assert classifier.flags(tiles(4)) == [True] * 4
    assert batches == [4]
    classifier.flags(tiles(1))
    assert batches == [4, 1]


def test_no_images_no_forward(counted: tuple[ImageClassifier, list[int]]) -> None:
    classifier, batches = counted
    assert classifier.flags([]) == []
    assert batches == []


def test_images_of_any_size_and_mode(counted: tuple[ImageClassifier, list[int]]) -> None:
    classifier, batches = counted
    images = [
        Image.new("RGB", (64, 48), (255, 0, 0)),
        Image.new("RGBA", (17, 33), (0, 255, 0, 128)),
        Image.new("L", (300, 200), 128),
        Image.new("RGB", (1, 1)),
    ]
    assert classifier.flags(images) == [True] * 4
    assert batches == [4]
    assert [image.mode for image in images] == ["RGB", "RGBA", "L", "RGB"]  # the caller's images are untouched


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing", "nested/missing/model"])
def test_a_missing_folder_is_a_clear_error(tmp_path: Path, name: str) -> None:
    missing = tmp_path / name
    with pytest.raises(FileNotFoundError, match="no such directory") as error:
        load(missing)
    assert str(missing) in str(error.value)


def test_a_relative_missing_folder_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        ImageClassifier.load("./no-such-classifier", labels=("nsfw",), threshold=0.5, device="cpu")
