"""/settings through the fake Discord: a server's defaults apply to the next /imagine without a restart,
its channel policy overrides the file's, ordinary members cannot use it, and bad values are refused
privately (hypothesis over what an admin can type)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings, parse_settings
from bot.diffusion.families import FLUX_SCHNELL, SD1
from bot.engine import Engine
from bot.engine.models import Catalogue
from bot.inputs import UserInputError
from bot.rules.server import Defaults, ServerSettings, member_options, parse_default
from tests import store_probe
from tests.cogs.conftest import JSON, BotFactory, has_grid
from tests.cogs.imagine.test_safety_e2e import flagging_engine, flagging_model  # noqa: F401 - fixtures
from tests.conftest import config_text
from tests.fakediscord import FakeDiscord, FakeDiscordError, Permissions

EPHEMERAL, CHANNEL_MESSAGE = 64, 4


def private(ix_response: object) -> str:
    body = ix_response.body  # type: ignore[attr-defined]
    assert body["type"] == CHANNEL_MESSAGE and body["data"]["flags"] & EPHEMERAL, body
    return str(body["data"]["content"])


def embed_field(message: JSON, name: str) -> str | None:
    return next((f["value"] for f in message["embeds"][0]["fields"] if f["name"] == name), None)  # type: ignore[index]


async def test_a_server_default_applies_to_the_next_imagine(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    async with make_bot():
        group = next(c for c in fake.commands if c["name"] == "settings")
        assert int(group["default_member_permissions"]) == Permissions.MANAGE_GUILD
        with pytest.raises(FakeDiscordError):  # hidden from members without Manage Server
            await fake.slash(fake.member, "settings show")

        size = await fake.slash(admin, "settings default", name="size", value="large")
        assert "size `large`" in private(await size.wait_response())
        steps = await fake.slash(admin, "settings default", name="steps", value="3")
        assert "steps 3" in private(await steps.wait_response())
        shown = private(await (await fake.slash(admin, "settings show")).wait_response())
        assert "**size** `large` · set for this server" in shown
        assert "**model** `model` · from the config file" in shown

        ix = await fake.slash(fake.member, "imagine", prompt="a lighthouse", seed=1)
        grid = await ix.wait_original(has_grid, timeout=60)
        assert (embed_field(grid, "Size"), embed_field(grid, "Steps")) == ("256×256", "3")
        mine = await fake.slash(fake.member, "imagine", prompt="a lighthouse", seed=1, size="small", steps=2)
        grid = await mine.wait_original(has_grid, timeout=60)  # a member's own choice wins
        assert (embed_field(grid, "Size"), embed_field(grid, "Steps")) == ("64×64", "2")

        bad = await fake.slash(admin, "settings default", name="steps", value="9999")
        assert "Steps must be between 1 and 50" in private(await bad.wait_response())
        reset = await fake.slash(admin, "settings reset", name="size")
        assert "follows the config file again" in private(await reset.wait_response())
        guild_id = int(fake.channel.guild_id)
        assert engine.server(guild_id).size is None and engine.server(guild_id).steps == 3
        await engine.set_server_default(guild_id, "steps", None, by=0)  # leave the shared engine as found


async def test_a_channel_policy_overrides_the_file(
    fake: FakeDiscord,
    make_bot: BotFactory,
    flagging_engine: Engine,  # noqa: F811 - the fixture imported above
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    async with make_bot(engine_=flagging_engine):
        nsfw_channel_id = int(fake.nsfw_channel.id)
        set_ix = await fake.slash(admin, "settings nsfw", options={"channel": nsfw_channel_id, "policy": "blur"})
        assert "Flagged tiles in" in private(await set_ix.wait_response())
        ix = await fake.slash(
            fake.member, "imagine", prompt="a flagged scene", seed=3, steps=2, size="small", channel=fake.nsfw_channel
        )
        grid = await ix.wait_original(has_grid, timeout=60)
    # the file allows flagged tiles in NSFW channels; this server wants them hidden in this one
    assert embed_field(grid, "Safety") == "⚠️ The safety checker flagged tile(s) 1, 2, 3, 4: hidden."


async def test_settings_survive_a_restart(tiny_model: Path, tmp_path: Path) -> None:
    settings = parse_settings(config_text(tiny_model, tmp_path / "s.db"))
    engine = await Engine.open(settings)
    try:
        await engine.set_server_default(7, "guidance", 4.5, by=1)
        await engine.set_channel_policy(7, 99, "spoiler", by=1)
    finally:
        await engine.close()
    again = await Engine.open(settings)
    try:
        assert again.server(7) == ServerSettings(guidance=4.5, nsfw={99: "spoiler"})
        assert again.server(8) == ServerSettings() and again.server(None) == ServerSettings()
    finally:
        await again.close()


MODELS = Catalogue.resolve(
    parse_settings('[[models]]\nname = "sd"\nid = "org/sd"\n[[models]]\nname = "fast"\nid = "org/fast"\n'),
    families={"org/sd": SD1, "org/fast": FLUX_SCHNELL},
)


@given(name=st.sampled_from(["model", "steps", "guidance", "size", "negative"]), raw=st.text(max_size=300))
def test_any_typed_value_is_accepted_within_bounds_or_refused_clearly(name: str, raw: str) -> None:
    try:
        value = parse_default(name, raw, MODELS)
    except UserInputError:  # refused with a sentence for the admin (bot.texts), nothing stored
        return
    if name == "steps":
        assert isinstance(value, int) and 1 <= value <= 50
    elif name == "guidance":
        assert isinstance(value, float) and 0 <= value <= 20
    elif name == "model":
        assert value in MODELS.names
    elif name == "size":
        assert value in [s.name for s in MODELS.size_names]
    else:
        assert isinstance(value, str) and value and "\n" not in value


def test_server_defaults_fill_only_what_the_member_left_empty() -> None:
    sd, fast = MODELS
    server = ServerSettings(steps=12, guidance=9.0, size="portrait", negative="blur")
    assert member_options(server, sd, steps=None, guidance=None, size=None, negative=None) == (
        12,
        9.0,
        "portrait",
        "blur",
    )
    assert member_options(server, sd, steps=5, guidance=3.0, size="square", negative="fog") == (5, 3.0, "square", "fog")
    # FLUX.1 schnell takes no guidance: the server's is not forced on it
    assert member_options(server, fast, steps=None, guidance=None, size=None, negative=None)[1] is None


def test_default_settings_have_no_server_values() -> None:
    assert ServerSettings().policy(5, "blur") == "blur"
    assert ServerSettings(nsfw={5: "allow"}).policy(5, "blur") == "allow"
    assert Settings().generation.default_steps is None


async def test_a_member_s_preferences_apply_and_show_in_the_recipe(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    async with make_bot():
        for name, value in (("size", "wide"), ("steps", "3"), ("negative", "fog")):
            ix = await fake.slash(fake.member, "preferences set", name=name, value=value)
            assert "Your default" in private(await ix.wait_response())
        shown = private(await (await fake.slash(fake.member, "preferences show")).wait_response())
        assert "**size** `wide`" in shown and "**guidance** the server's" in shown
        ix = await fake.slash(fake.member, "imagine", prompt="a lighthouse", seed=2)
        grid = await ix.wait_original(has_grid, timeout=60)
        assert (embed_field(grid, "Size"), embed_field(grid, "Steps"), embed_field(grid, "Negative")) == (
            "96×64",
            "3",
            "fog",
        )
        other = fake.add_member("other")  # someone else's defaults are not theirs
        theirs = await fake.slash(other, "imagine", prompt="a lighthouse", seed=2, steps=2)
        assert embed_field(await theirs.wait_original(has_grid, timeout=60), "Size") == "64×64"
        bad = await fake.slash(fake.member, "preferences set", name="model", value="@everyone")
        assert "There is no model '@everyone' here" in private(await bad.wait_response())
        for name in ("size", "steps", "negative"):
            await (await fake.slash(fake.member, "preferences reset", name=name)).wait_response()
    assert await engine.preferences(fake.member.user.id) == Defaults()


async def test_a_daily_allowance_refuses_privately_until_a_larger_role_lifts_it(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine, settings: Settings
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    patrons = fake.add_role("patrons")
    patron = fake.add_member("patron", roles=[patrons])
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        everyone = await fake.slash(admin, "settings quota", options={"role": guild_id, "images": 4})
        assert "may have 4 images drawn a day" in private(await everyone.wait_response())
        first = await fake.slash(patron, "imagine", prompt="one grid", seed=1, steps=1, size="small")
        await first.wait_original(has_grid, timeout=60)
        before = await store_probe.last_job_id(settings.storage.database)
        second = await fake.slash(patron, "imagine", prompt="a second", seed=2, steps=1, size="small")
        refusal = private(await second.wait_response())
        assert "You have used your 4 images for today here" in refusal and "<t:" in refusal
        assert await store_probe.last_job_id(settings.storage.database) == before  # nothing stored
        left = private(await (await fake.slash(patron, "quota")).wait_response())
        assert left.startswith("You have 0 of your 4 images left today")

        lifted = await fake.slash(admin, "settings quota", options={"role": patrons.id, "images": 8})
        await lifted.wait_response()
        again = await fake.slash(patron, "imagine", prompt="a second", seed=2, steps=1, size="small")
        await again.wait_original(has_grid, timeout=60)  # the most generous role applies
        for role in (guild_id, patrons.id):
            await (await fake.slash(admin, "settings quota", options={"role": role})).wait_response()
    assert engine.server(guild_id).quotas == {}
