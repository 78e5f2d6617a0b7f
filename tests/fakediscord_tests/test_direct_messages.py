"""The fake's direct messages: ``POST /users/@me/channels``, messages in the DM channel, DMs refused (50007)."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import discord
import pytest

from tests.fakediscord import FakeDiscord, Member
from tests.fakediscord_tests.probe_bot import ProbeBot, png_bytes


def bot_headers(fake: FakeDiscord) -> dict[str, str]:
    return {"Authorization": f"Bot {fake.token}"}


async def test_create_dm_returns_one_spec_shaped_channel_per_user(fake: FakeDiscord, alice: Member) -> None:
    url = f"{fake.api_base_url}/users/@me/channels"
    async with aiohttp.ClientSession(headers=bot_headers(fake)) as session:
        async with session.post(url, json={"recipient_id": alice.id}) as resp:
            first = await resp.json()
            assert resp.status == 200
        async with session.post(url, json={"recipient_id": int(alice.id)}) as resp:
            again = await resp.json()
        async with session.post(url, json={"recipient_id": fake.member.id}) as resp:
            other = await resp.json()
        async with session.post(url, json={"recipient_id": "1234"}) as resp:  # nobody
            assert resp.status == 400 and (await resp.json())["code"] == 50033
        async with session.get(f"{fake.api_base_url}/channels/{first['id']}") as resp:
            fetched = await resp.json()
    assert first["type"] == 1 and [u["id"] for u in first["recipients"]] == [alice.id]
    assert "guild_id" not in first and again["id"] == first["id"] == fetched["id"]
    assert other["id"] != first["id"]
    dm = fake.dm_channel(alice)
    assert dm is not None and dm.id == first["id"]
    assert fake.violations == []  # every response validated against PrivateChannelResponse
    assert [e for e in fake.protocol_errors if "50033" not in e] == []


async def test_the_bot_posts_and_edits_files_embeds_and_buttons_in_dms(
    fake: FakeDiscord, bot: ProbeBot, alice: Member
) -> None:
    user = await bot.fetch_user(int(alice.id))
    dm = await user.create_dm()
    assert isinstance(dm, discord.DMChannel) and dm.recipient is not None and dm.recipient.id == int(alice.id)
    assert (await bot.create_dm(discord.Object(int(alice.id)))).id == dm.id
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="1", custom_id="dm:1"))
    embed = discord.Embed(title="your grid").set_image(url="attachment://grid.png")
    file = discord.File(io.BytesIO(png_bytes(seed=3)), filename="grid.png")
    sent = await dm.send("here it is", embed=embed, file=file, view=view, nonce="n-1")
    stored = await fake.wait_for_direct_message(alice, lambda m: bool(m["attachments"]))
    assert stored["id"] == str(sent.id) and stored["channel_id"] == str(dm.id)
    assert fake.attachment_bytes(stored, "grid.png") == png_bytes(seed=3)
    assert stored["embeds"][0]["image"]["url"] == stored["attachments"][0]["url"]
    assert stored["components"][0]["components"][0]["custom_id"] == "dm:1"
    edited = await sent.edit(content="done", attachments=[], view=None)
    assert edited.content == "done"
    after: list[dict[str, Any]] = fake.direct_messages(alice)
    assert [m["content"] for m in after] == ["done"] and after[0]["attachments"] == []
    assert fake.direct_messages(fake.member) == []
    assert [m for m in fake.all_messages() if m["channel_id"] == str(fake.channel.id)] == []  # not in a channel
    assert fake.violations == [] and fake.protocol_errors == []


async def test_closed_dms_refuse_messages_with_50007(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    fake.close_dms(alice)
    dm = await bot.create_dm(discord.Object(int(alice.id)))  # opening the channel still works
    with pytest.raises(discord.Forbidden) as refused:
        await dm.send("hello?")
    assert refused.value.code == 50007 and refused.value.text == "Cannot send messages to this user"
    assert fake.direct_messages(alice) == []
    assert len(fake.protocol_errors) == 1 and "403 50007" in fake.protocol_errors[0]
    fake.open_dms(alice)
    await dm.send("hello!")
    assert [m["content"] for m in fake.direct_messages(alice)] == ["hello!"]
    assert fake.violations == []
