"""Two models through the fake Discord: /imagine model:, what the status and the embed say, refine and
re-roll keeping the grid's own model after the admin changes the default, a grid whose model is gone,
what a model ignores told privately, and the NSFW classifier on a family without a safety checker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import parse_settings
from bot.engine import Engine
from tests.classifier_model import build_tiny_classifier
from tests.cogs.conftest import JSON, BotFactory, buttons, has_grid, replying_to
from tests.conftest import config_text
from tests.fakediscord import FakeDiscord
from tests.families.flux import build_flux_schnell

EPHEMERAL = 1 << 6
IDENTIFY = 2


@pytest.fixture(scope="module")
def flux_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flux_schnell(tmp_path_factory.mktemp("tiny-flux-schnell") / "model")


def models_toml(*entries: tuple[str, Path]) -> str:
    return "".join(f'\n[[models]]\nname = "{name}"\nid = "{folder}"\n' for name, folder in entries)


@contextlib.asynccontextmanager
async def engine_with(database: Path, *entries: tuple[str, Path], extra: str = "") -> AsyncIterator[Engine]:
    engine = await Engine.open(parse_settings(config_text(None, database, extra=models_toml(*entries) + extra)))
    try:
        yield engine
    finally:
        await engine.close(grace=0)


def embed_field(message: JSON, name: str) -> str | None:
    return next((f["value"] for f in message["embeds"][0]["fields"] if f["name"] == name), None)  # type: ignore[index]


async def imagine(fake: FakeDiscord, **options: object) -> tuple[JSON, object]:
    ix = await fake.slash(fake.member, "imagine", size="small", steps=2, **options)
    return await ix.wait_original(has_grid, timeout=60), ix


async def test_members_pick_a_model_and_its_grid_keeps_it(
    fake: FakeDiscord,
    make_bot: BotFactory,
    tiny_model: Path,
    flux_model: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.diffusion.shelf")
    database = tmp_path / "models.db"
    async with engine_with(database, ("sd", tiny_model), ("flux", flux_model)) as engine, make_bot(engine_=engine):
        command = next(c for c in await fake.wait_for_commands() if c["name"] == "imagine")
        model_option = next(o for o in command["options"] if o["name"] == "model")
        assert [c["value"] for c in model_option["choices"]] == ["sd", "flux"]
        assert [c["name"] for c in model_option["choices"]] == ["sd (Stable Diffusion 1.x)", "flux (FLUX.1 [schnell])"]

        flux_grid, flux_ix = await imagine(fake, prompt="a fox", seed=3, model="flux")
        sd_grid, _ = await imagine(fake, prompt="a fox", seed=3)  # no model: the default (first) one
        assert embed_field(flux_grid, "Model") == "flux (FLUX.1 [schnell])"
        assert embed_field(sd_grid, "Model") == "sd (Stable Diffusion 1.x)"
        # one model at a time (memory_budget 0): flux was loaded for its job, then sd again for the next
        loads = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().startswith("model ")]
        assert [name for name in loads if name in ("sd", "flux")][-2:] == ["flux", "sd"]
        assert fake.attachment_bytes(flux_grid["id"]) != fake.attachment_bytes(sd_grid["id"])  # type: ignore[arg-type]

    # the admin puts flux first: the default changes, the sd grid's buttons still draw with sd
    async with engine_with(database, ("flux", flux_model), ("sd", tiny_model)) as engine, make_bot(engine_=engine):
        await fake.wait_for_gateway_op(IDENTIFY, count=2)  # the new bot's session, not the closed one's
        click = await fake.click(fake.member, sd_grid, buttons(sd_grid)[0]["custom_id"])  # type: ignore[arg-type]
        await click.wait_response()
        assert click.modal is not None
        field = click.modal["components"][0]["components"][0]
        await fake.submit_modal(fake.member, click, {field["custom_id"]: ", at night"})
        refined = await fake.wait_for_message(replying_to(sd_grid["id"]), timeout=60)  # type: ignore[arg-type]
        assert embed_field(refined, "Model") == "sd (Stable Diffusion 1.x)"
        reroll = next(b for b in buttons(flux_grid) if b["label"] == "Re-roll")
        await (await fake.click(fake.member, flux_grid, reroll["custom_id"])).wait_response()  # type: ignore[arg-type]
        rerolled = await fake.wait_for_message(replying_to(flux_grid["id"]), timeout=60)  # type: ignore[arg-type]
        assert embed_field(rerolled, "Model") == "flux (FLUX.1 [schnell])"

    # sd is no longer offered: its grid's buttons answer privately, naming it
    async with engine_with(database, ("flux", flux_model)) as engine, make_bot(engine_=engine):
        await fake.wait_for_gateway_op(IDENTIFY, count=3)
        click = await fake.click(fake.member, sd_grid, buttons(sd_grid)[1]["custom_id"])  # type: ignore[arg-type]
        body = (await click.wait_response()).body
        assert body["data"]["flags"] & EPHEMERAL
        assert "drawn by sd, which this bot no longer offers" in body["data"]["content"]
        assert click.modal is None
    assert flux_ix is not None


async def test_what_a_model_ignores_is_said_privately(
    fake: FakeDiscord, make_bot: BotFactory, tiny_model: Path, flux_model: Path, tmp_path: Path
) -> None:
    async with (
        engine_with(tmp_path / "notes.db", ("flux", flux_model), ("sd", tiny_model)) as engine,
        make_bot(engine_=engine),
    ):
        grid, ix = await imagine(fake, prompt="a fox", seed=1, guidance=9.0)  # FLUX.1 schnell: no guidance
        note = await ix.wait_followup(lambda m: "does not use guidance" in (m["content"] or ""))  # type: ignore[attr-defined]
        assert note["flags"] & EPHEMERAL
        assert embed_field(grid, "Guidance") == "0"  # the recipe says what really ran
        long = "a" * 100  # 102 tokens for either tiny tokenizer: past CLIP's 77, within the T5's 256
        _, quiet = await imagine(fake, prompt=long, seed=2, model="flux")
        _, cut = await imagine(fake, prompt=long, seed=2, model="sd")
        notice = await cut.wait_followup(lambda m: "first 77 tokens" in (m["content"] or ""))  # type: ignore[attr-defined]
        assert notice["flags"] & EPHEMERAL
        assert not quiet.followups  # type: ignore[attr-defined]


async def test_the_classifier_flags_and_blurs_on_a_family_without_a_checker(
    fake: FakeDiscord, make_bot: BotFactory, flux_model: Path, tmp_path: Path
) -> None:
    classifier = build_tiny_classifier(tmp_path / "nsfw-classifier", flags=True)
    extra = f'\n[safety]\nclassifier = "{classifier}"\n'
    async with engine_with(tmp_path / "nsfw.db", ("flux", flux_model), extra=extra) as engine:
        assert engine.info is not None and engine.info.safety_checker  # the classifier checks it
        async with make_bot(engine_=engine):
            safe, _ = await imagine(fake, prompt="a fox", seed=4)
            allowed_ix = await fake.slash(
                fake.member, "imagine", prompt="a fox", seed=4, size="small", steps=2, channel=fake.nsfw_channel
            )
            allowed = await allowed_ix.wait_original(has_grid, timeout=60)
    assert embed_field(safe, "Safety") == "⚠️ The safety checker flagged tile(s) 1, 2, 3, 4: hidden."
    assert embed_field(allowed, "Safety") is None  # an NSFW channel allows it
    blurred = fake.attachment_bytes(safe["id"], safe["attachments"][0]["filename"])  # type: ignore[index,arg-type]
    original = fake.attachment_bytes(allowed["id"], allowed["attachments"][0]["filename"])  # type: ignore[index,arg-type]
    assert blurred != original
