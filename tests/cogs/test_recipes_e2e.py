"""Show recipe (a message command) and /reproduce through the fake Discord, down to the posted bytes.

Show recipe answers privately with the recipe the engine kept and a command line that draws it again (run
here through the command line's own parser and checks); /reproduce runs a PNG's recipe, or a linked
message's, through the same path as /imagine; every mistake and every hostile file gets a private answer
and stores nothing.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
from dataclasses import replace
from typing import Any

import pytest
from PIL import Image

from bot.__main__ import build_parser, request_from_args
from bot.engine import Engine
from bot.imaging.png import encode_rgb
from bot.imaging.recipe import read_recipe
from cogs.client import SeedgridBot
from tests.cogs.conftest import JSON, has_grid
from tests.cogs.imagine.test_cog import DEFERRED_CHANNEL_MESSAGE, image, imagine
from tests.cogs.imagine.test_upscale_e2e import press, reply_with
from tests.fakediscord import FakeDiscord, Interaction, Upload

CHANNEL_MESSAGE, EPHEMERAL = 4, 64


async def private_answer(ix: Interaction) -> dict[str, Any]:
    """The interaction's answer, which must be a private message (type 4, ephemeral) that pings nobody."""
    response = await ix.wait_response()
    assert response.type == CHANNEL_MESSAGE
    data: dict[str, Any] = response.body["data"]
    assert data["flags"] & EPHEMERAL and data["allowed_mentions"] == {"parse": []}
    return data


def field(embed: dict[str, Any], name: str) -> str:
    return str(next(f["value"] for f in embed["fields"] if f["name"] == name))


def link(fake: FakeDiscord, message: JSON) -> str:
    return f"https://discord.com/channels/{fake.guild.id}/{message['channel_id']}/{message['id']}"


def png_with(metadata: dict[str, str]) -> bytes:
    return encode_rgb(Image.new("RGB", (8, 8), "white"), metadata=metadata)


async def test_show_recipe_of_a_grid_and_its_command_line(fake: FakeDiscord, bot: SeedgridBot, engine: Engine) -> None:
    menu = next(c for c in fake.commands if c["name"] == "Show recipe")
    assert menu["type"] == 3
    grid = await imagine(
        fake, prompt="a lighthouse at dusk, @everyone <@&123456789012345678>", seed=42, steps=2, size="wide"
    )
    posted, _ = image(fake, grid)

    data = await private_answer(await fake.message_command(fake.member, grid, "Show recipe"))
    (embed,) = data["embeds"]
    job = int(grid["embeds"][0]["footer"]["text"].split()[1])  # type: ignore[index]
    assert embed["title"] == f"Recipe of job {job} · grid"
    lines = embed["description"].split("\n")
    assert lines[0] == "**1** · seed 42 · a lighthouse at dusk, @\u200beveryone <@\u200b&123456789012345678>"
    assert [line.split(" · ")[1] for line in lines] == ["seed 42", "seed 43", "seed 44", "seed 45"]
    assert field(embed, "Settings").startswith("2 steps · guidance 7.5 · 96×64 · sampler ")
    assert field(embed, "Model").startswith("model · ")
    assert "Chain" not in [f["name"] for f in embed["fields"]]
    assert len(json.dumps(embed)) < 6000

    # the command line it shows, through the command line's own parser and checks: the same grid, byte for byte
    command = field(embed, "Command line").removeprefix("```sh\n").removesuffix("\n```")
    words = shlex.split(command)
    assert words[:2] == ["seedgrid", "imagine"]
    request = request_from_args(bot.settings, build_parser().parse_args(words[1:]), engine.models)
    assert (await (await engine.submit(request)).result()).grid_png == posted


async def test_show_recipe_of_an_upscale_then_reproduce_it_by_link(
    fake: FakeDiscord, bot: SeedgridBot, engine: Engine
) -> None:
    grid = await imagine(fake, prompt="a small house", seed=7, steps=2, size="small")
    await press(fake, grid, "U3")
    upscale = await fake.wait_for_message(reply_with(grid, "Refine"), timeout=120)
    posted, _ = image(fake, upscale)
    grid_job = int(grid["embeds"][0]["footer"]["text"].split()[1])  # type: ignore[index]

    (embed,) = (await private_answer(await fake.message_command(fake.member, upscale, "Show recipe")))["embeds"]
    assert embed["title"].endswith(" · upscale")
    assert field(embed, "Chain") == (
        f"grid · seed 9 · 64×64 → upscale · seed 9 · 128×128 · strength 0.35 · tile 3 of job {grid_job} (this image)"
    )
    filename = upscale["attachments"][0]["filename"]
    assert field(embed, "Command line") == (
        f"Save the image as `{filename}`, then:\n```sh\nseedgrid reproduce {filename} --config config.toml"
        " --out again/\n```"
    )

    # /reproduce with a link to it: acknowledged at once, then the same upscale through the queue
    ix = await fake.slash(fake.member, "reproduce", link=link(fake, upscale))
    assert (await ix.wait_response()).type == DEFERRED_CHANNEL_MESSAGE
    again = await ix.wait_original(lambda m: bool(m["attachments"] and m["embeds"]), timeout=120)
    data, _ = image(fake, again)
    assert Image.open(io.BytesIO(data)).tobytes() == Image.open(io.BytesIO(posted)).tobytes()
    assert read_recipe(data) == read_recipe(posted)


async def test_reproduce_a_grid_png_gives_the_same_grid(fake: FakeDiscord, bot: SeedgridBot) -> None:
    grid = await imagine(fake, prompt="a red fox in snow", seed=1234, steps=2, size="small")
    posted, _ = image(fake, grid)
    ix = await fake.slash(fake.member, "reproduce", image=Upload("fox.png", posted))
    response = await ix.wait_response()
    assert response.type == DEFERRED_CHANNEL_MESSAGE and ix.ack_latency is not None and ix.ack_latency < 3
    again = await ix.wait_original(has_grid, timeout=60)
    assert image(fake, again)[0] == posted  # the same PNG bytes, recipe included
    assert [b["label"] for row in again["components"] for b in row["components"]] == [
        *"1234",
        "Re-roll",
        "U1",
        "U2",
        "U3",
        "U4",
    ]


async def test_show_recipe_of_a_message_that_is_not_seedgrids(fake: FakeDiscord, bot: SeedgridBot) -> None:
    said = await fake.say(fake.member, "hello <@&1>")
    data = await private_answer(await fake.message_command(fake.member, said, "Show recipe"))
    assert data["content"] == "⚠️ This message was not posted by seedgrid, so it has no recipe."


@pytest.mark.parametrize(
    ("options", "answer"),
    [
        ({}, "Give either an image or a message link: one of the two."),
        ({"link": "https://example.com/x"}, "That is not a link to a Discord message"),
        ({"link": "https://discord.com/channels/1/2/3"}, "That message is in another server"),
        ({"image": Upload("cat.png", b"GIF89a" + bytes(64))}, "cat.png is not a PNG"),
        ({"image": Upload("plain.png", png_with({}))}, "plain.png carries no recipe seedgrid can read"),
        (
            {"image": Upload("bad.png", png_with({"seedgrid": '{"kind": "imagine", "tiles": [{"prompt": "<@1>"}]'}))},
            "bad.png carries no recipe",
        ),
    ],
)
async def test_reproduce_refusals(fake: FakeDiscord, bot: SeedgridBot, options: dict[str, Any], answer: str) -> None:
    data = await private_answer(await fake.slash(fake.member, "reproduce", **options))
    assert data["content"].startswith("⚠️ " + answer), data["content"]
    assert fake.messages(fake.channel, include_ephemeral=False) == []  # nothing queued, nothing posted


async def test_reproduce_refuses_recipes_it_cannot_run(
    fake: FakeDiscord, bot: SeedgridBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = await imagine(fake, prompt="a boat", seed=3, steps=2, size="small")
    posted, _ = image(fake, grid)
    recipe = read_recipe(posted)
    assert recipe is not None
    cases = {
        "elsewhere.png": (replace(recipe, model="elsewhere"), "This image was made with the model elsewhere"),
        "huge.png": (replace(recipe, width=8192), "This recipe cannot be run here: 8192×64 is larger than"),
        "odd.png": (replace(recipe, width=65), "This recipe cannot be run here: 65×64 is not a multiple of 8"),
        "steps.png": (replace(recipe, steps=1000), "Steps must be between"),
    }
    before = len(fake.messages(fake.channel, include_ephemeral=False))
    for name, (changed, answer) in cases.items():
        upload = Upload(name, png_with(changed.metadata()))
        data = await private_answer(await fake.slash(fake.member, "reproduce", image=upload))
        assert data["content"].startswith("⚠️ " + answer), data["content"]
    both = await fake.slash(fake.member, "reproduce", image=Upload("g.png", posted), link=link(fake, grid))
    assert (await private_answer(both))["content"].startswith("⚠️ Give either")
    unknown = await fake.slash(fake.member, "reproduce", link=f"https://discord.com/channels/{fake.guild.id}/1/2")
    assert (await private_answer(unknown))["content"].startswith("⚠️ That message has no recipe this bot knows of")
    # the module discord.py loaded as the extension (load_extension makes its own module object)
    monkeypatch.setattr(sys.modules["cogs.recipes"], "MAX_FILE_BYTES", 100)
    data = await private_answer(await fake.slash(fake.member, "reproduce", image=Upload("big.png", posted)))
    assert data["content"].startswith("⚠️ big.png is ") and "at most 0 MB" in data["content"]
    assert len(fake.messages(fake.channel, include_ephemeral=False)) == before


async def test_reproduce_an_a1111_png_draws_its_parameters(fake: FakeDiscord, bot: SeedgridBot, engine: Engine) -> None:
    """A PNG from AUTOMATIC1111 (or any tool writing its ``parameters``): its prompt, negative, steps, CFG scale,
    seed and size, drawn on this bot's model (the checkpoint it names is not ours to load)."""
    parameters = (
        "a red fox in snow, watercolor\nNegative prompt: blurry, text\n"
        'Steps: 2, Sampler: Euler a, CFG scale: 6.5, Seed: 321, Size: 64x64, Model: "dreamshaper_8", Version: v1.10.1'
    )
    ix = await fake.slash(fake.member, "reproduce", image=Upload("a1111.png", png_with({"parameters": parameters})))
    assert (await ix.wait_response()).type == DEFERRED_CHANNEL_MESSAGE
    grid = await ix.wait_original(has_grid, timeout=60)
    embed = grid["embeds"][0]  # type: ignore[index]
    assert embed["title"] == "a red fox in snow, watercolor"
    assert (field(embed, "Steps"), field(embed, "Guidance"), field(embed, "Size")) == ("2", "6.5", "64×64")
    assert field(embed, "Negative") == "blurry, text" and "321" in field(embed, "Seeds")
    posted, _ = image(fake, grid)
    recipe = read_recipe(posted)
    assert recipe is not None and recipe.tiles[0].seed == 321 and recipe.negative == "blurry, text"
    job = await engine.job(int(str(grid["components"][0]["components"][0]["custom_id"]).split(":")[2]))  # type: ignore[index]
    assert job is not None and (job.request.seed, job.request.steps, job.request.guidance) == (321, 2, 6.5)
