"""Every supported family, built tiny and loaded through seedgrid's own loader (``Pipeline.load``).

For each: the family is recognised from the pipeline (not the name); a batch of four tiles is, tile
by tile, the image a plain one-image diffusers call with the same seed and the preset's arguments
gives (≤ 2/255 on CPU); a refine run likewise; previews come out (or are deliberately off) with no
failure in the log; a negative prompt changes the picture where the family uses one and earns the
member a note where it does not; the "words cut" notice uses the limit of the encoder that reads
the prompt longest.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image, LCMScheduler
from PIL import Image

from bot.config import ModelSettings, Settings
from bot.diffusion.pipeline import Pipeline
from bot.diffusion.prompts import PromptLimit
from bot.diffusion.renderer import PipelineRenderer
from bot.engine.models import Catalogue
from bot.inputs import imagine_request, model_notes
from bot.jobs import GenParams, Job, JobKind, JobRequest, Tile
from tests.families import FAMILIES, TinyFamily

TOLERANCE = 2
"""Tile of a batch vs a one-image run, in 0..255 steps: CPU float rounding differs with the batch size."""
STEPS = 2
PROMPT = "a lighthouse at dusk"


class Loaded:
    def __init__(self, tiny: TinyFamily, folder: Path) -> None:
        self.tiny = tiny
        self.folder = folder
        self.pipeline = Pipeline.load(ModelSettings(id=str(folder), device="cpu", scheduler=tiny.scheduler))
        self.plain = AutoPipelineForText2Image.from_pretrained(folder)
        if tiny.scheduler == "LCMScheduler":  # what a diffusers user writes to swap it
            self.plain.scheduler = LCMScheduler.from_config(self.plain.scheduler.config)
        self.plain.set_progress_bar_config(disable=True)

    @property
    def width(self) -> int:
        return self.tiny.size[0]

    @property
    def height(self) -> int:
        return self.tiny.size[1]

    def params(self, *tiles: tuple[str, int], negative: str = "", guidance: float | None = None) -> GenParams:
        family = self.pipeline.family
        return GenParams(
            tiles=tuple(Tile(prompt, seed) for prompt, seed in tiles),
            negative=negative,
            steps=STEPS,
            guidance=family.guidance if guidance is None else guidance,
            width=self.width,
            height=self.height,
        )

    def solo(self, prompt: str, seed: int) -> np.ndarray:
        """One image, as a plain diffusers user draws it with the preset's arguments."""
        output = self.plain(
            prompt=[prompt],
            generator=[torch.Generator("cpu").manual_seed(seed)],
            num_inference_steps=STEPS,
            width=self.width,
            height=self.height,
            **self.tiny.plain,
        )
        return pixels(output.images[0])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module", params=FAMILIES, ids=[f.name for f in FAMILIES])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    tiny: TinyFamily = request.param
    return Loaded(tiny, tiny.build(tmp_path_factory.mktemp(f"tiny-{tiny.name}") / "model"))


def test_the_family_is_recognised_from_the_pipeline(loaded: Loaded) -> None:
    assert loaded.pipeline.family.name == loaded.tiny.name
    assert loaded.pipeline.info.family == loaded.tiny.name


def test_batch_tiles_are_the_plain_solo_runs(loaded: Loaded) -> None:
    seeds = (11, 12, 13, 14)
    output = loaded.pipeline.generate(loaded.params(*((PROMPT, seed) for seed in seeds)))
    assert [image.size for image in output.images] == [loaded.tiny.size] * 4
    tiles = [pixels(image) for image in output.images]
    assert len({tile.tobytes() for tile in tiles}) == 4  # four seeds, four pictures
    for seed, tile in zip(seeds, tiles, strict=True):
        assert np.abs(tile - loaded.solo(PROMPT, seed)).max() <= TOLERANCE, f"seed {seed}"


def test_image_to_image_where_diffusers_maps_the_family(loaded: Loaded) -> None:
    """Upscale and vary draw from an image on the image-to-image pipeline ``from_pipe`` builds on the loaded
    weights: tile *i* is what a plain diffusers img2img call with its seed gives; families without one refuse."""
    start = loaded.pipeline.generate(loaded.params((PROMPT, 5))).images[0]
    params = loaded.params((PROMPT, 21), (PROMPT, 22))
    if not loaded.pipeline.image_to_image:
        with pytest.raises(ValueError, match="no image-to-image pipeline"):
            loaded.pipeline.generate(params, image=start, strength=0.5)
        return
    output = loaded.pipeline.generate(params, image=start, strength=0.5)
    assert [image.size for image in output.images] == [loaded.tiny.size] * 2
    assert pixels(output.images[0]).tobytes() != pixels(output.images[1]).tobytes()
    plain = AutoPipelineForImage2Image.from_pipe(loaded.plain)
    plain.set_progress_bar_config(disable=True)
    size = {"width": loaded.width, "height": loaded.height} if "width" in vars_of_call(plain) else {}
    solo = plain(
        prompt=[PROMPT],
        image=[start],
        strength=0.5,
        generator=[torch.Generator("cpu").manual_seed(22)],
        num_inference_steps=STEPS,
        **size,
        **loaded.tiny.plain,
    ).images[0]
    assert np.abs(pixels(output.images[1]) - pixels(solo)).max() <= TOLERANCE


def vars_of_call(pipe: Any) -> set[str]:
    import inspect

    return set(inspect.signature(type(pipe).__call__).parameters)


def test_a_refine_job_reruns_one_seed_per_suffix(loaded: Loaded) -> None:
    request = JobRequest(
        kind=JobKind.REFINE,
        prompt=PROMPT,
        seed=21,
        suffixes=(", watercolor", ", neon"),
        negative="",
        steps=STEPS,
        guidance=loaded.pipeline.family.guidance,
        width=loaded.width,
        height=loaded.height,
    )
    result = PipelineRenderer(loaded.pipeline).render(Job(1, request), lambda *_: None, lambda: False)
    tiles = [pixels(image) for image in result.images.images()]
    assert not np.array_equal(tiles[0], tiles[1])
    for suffix, tile in zip(request.suffixes, tiles, strict=True):
        assert np.abs(tile - loaded.solo(PROMPT + suffix, 21)).max() <= TOLERANCE, suffix


def test_previews_come_out_without_a_failure(loaded: Loaded, caplog: pytest.LogCaptureFixture) -> None:
    previews: list[bytes] = []
    steps: list[int] = []
    with caplog.at_level(logging.WARNING):
        loaded.pipeline.generate(
            GenParams(**{**vars_of(loaded.params((PROMPT, 1), (PROMPT, 2))), "steps": 3}),
            on_step=lambda n, _: steps.append(n),
            on_preview=lambda _, image: previews.append(image),
            preview_every=1,
        )
    assert "preview" not in caplog.text
    assert steps == [1, 2, 3]  # progress in the member's units, whatever the loop's shape
    assert len(previews) == 2  # after steps 1 and 2 (the finished images follow step 3)
    assert Image.open(io.BytesIO(previews[0])).format == "JPEG"


def vars_of(params: GenParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in GenParams.__dataclass_fields__}


def test_a_negative_prompt_is_honoured_or_the_member_is_told(loaded: Loaded) -> None:
    family = loaded.pipeline.family
    preset = Catalogue.resolve(Settings(), families={"stable-diffusion-v1-5/stable-diffusion-v1-5": family}).default
    request = imagine_request(preset, prompt=PROMPT, negative="blurry, low quality", seed=5)
    notes = model_notes(preset, request, negative="blurry, low quality", guidance=None)
    without = loaded.pipeline.generate(loaded.params((PROMPT, 5)))
    with_negative = loaded.pipeline.generate(loaded.params((PROMPT, 5), negative="blurry, low quality"))
    changed = not np.array_equal(pixels(without.images[0]), pixels(with_negative.images[0]))
    if family.negative_used(family.guidance):
        assert changed and notes == []
    else:
        assert not changed  # nothing reached the model: the note says so
        assert [note.key for note in notes] in (["note.negative_unsupported"], ["note.negative_low_guidance"])


def test_the_token_notice_uses_the_reading_encoder(loaded: Loaded) -> None:
    limit = loaded.pipeline.prompt_limit
    assert limit is not None
    assert limit.max_prompt_tokens == loaded.tiny.tokens
    assert limit.prompt_overflow(PROMPT) is None
    long = " ".join(f"word{i}" for i in range(1500))
    cut = limit.prompt_overflow(long)
    assert cut is not None and long.endswith(cut) and len(cut) < len(long)
    alone = PromptLimit.load(str(loaded.folder), loaded.pipeline.family)  # the engine's copy: no weights
    assert alone is not None
    for prompt in (PROMPT, long, "a " * 70 + "tail"):
        assert alone.prompt_overflow(prompt) == limit.prompt_overflow(prompt)


def test_compile_wraps_the_transformer_of_a_transformer_family(tmp_path: Path) -> None:
    """model.compile on a family without a UNet: the transformer and the VAE decoder are compiled (dynamo's
    capture-only backend here: inductor's C++ build is too slow for CI), and the pictures do not change."""
    tiny = next(f for f in FAMILIES if f.name == "flux-dev")
    folder = tiny.build(tmp_path / "model")
    eager = Pipeline.load(ModelSettings(id=str(folder), device="cpu"))
    compiled = Pipeline.load(ModelSettings(id=str(folder), device="cpu", compile=True, compile_backend="eager"))
    assert any(option.startswith("compile(transformer, eager") for option in compiled.info.speed)
    assert not any(option in ("sdpa", "classic", "channels_last", "fuse_qkv") for option in compiled.info.speed)
    params = GenParams(tiles=(Tile(PROMPT, 3), Tile(PROMPT, 4)), negative="", steps=STEPS, guidance=3.5,
                       width=tiny.size[0], height=tiny.size[1])  # fmt: skip
    for mine, plain in zip(compiled.generate(params).images, eager.generate(params).images, strict=True):
        assert np.abs(pixels(mine) - pixels(plain)).max() <= TOLERANCE


def test_an_unknown_pipeline_runs_with_its_own_defaults_and_no_preview(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """LatentConsistencyModelPipeline (a distilled LCM model) is no family seedgrid knows: it runs with its
    own defaults (4 steps, guidance 8.5), no negative prompt (its __call__ takes none), no preview."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel

    from tests.families.parts import seeded_save
    from tests.tiny_model import _components, _tokenizer

    def make() -> LatentConsistencyModelPipeline:
        parts = _components(_tokenizer(), safety_checker=False)
        config = {k: v for k, v in dict(parts["unet"].config).items() if not k.startswith("_")}  # type: ignore[attr-defined]
        parts["unet"] = UNet2DConditionModel(**{**config, "time_cond_proj_dim": 32})  # the guidance embedding
        parts["scheduler"] = LCMScheduler.from_config(parts["scheduler"].config)  # type: ignore[attr-defined]
        parts.pop("requires_safety_checker")
        return LatentConsistencyModelPipeline(**parts)  # type: ignore[arg-type]

    folder = seeded_save(make, tmp_path / "lcm")
    with caplog.at_level(logging.WARNING, logger="bot.diffusion.families"):
        pipeline = Pipeline.load(ModelSettings(id=str(folder), device="cpu"))
    assert "LatentConsistencyModelPipeline is not a pipeline family seedgrid knows" in caplog.text
    family = pipeline.family
    assert (family.name, family.steps, family.guidance, family.preview) == ("generic", 4, 8.5, False)
    assert not family.negative_used(8.5)
    previews: list[bytes] = []
    params = GenParams(tiles=(Tile(PROMPT, 1),), negative="ignored", steps=2, guidance=8.5, width=64, height=64)
    output = pipeline.generate(params, on_preview=lambda _, image: previews.append(image), preview_every=1)
    assert output.images[0].size == (64, 64) and previews == []
