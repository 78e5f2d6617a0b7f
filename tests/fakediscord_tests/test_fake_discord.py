"""Self-tests of the fake Discord, driven through the real discord.py client (see probe_bot.py)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import aiohttp
import discord
import pytest
import yarl

from tests.fakediscord import FakeDiscord, FakeDiscordError, Member, Upload, load_spec
from tests.fakediscord.discordpy import pointed_at, running
from tests.fakediscord_tests.probe_bot import ProbeBot, png_bytes

EPHEMERAL = 1 << 6
LOADING = 1 << 7


def bot_headers(fake: FakeDiscord) -> dict[str, str]:
    return {"Authorization": f"Bot {fake.token}"}


# ---------------------------------------------------------------------- connection and registration


async def test_login_sync_and_ready(fake: FakeDiscord, bot: ProbeBot) -> None:
    assert bot.user is not None and str(bot.user.id) == fake.bot_user.id
    assert bot.application_id is not None and str(bot.application_id) == fake.application_id
    names = {c["name"] for c in fake.commands}
    assert {"imagine", "describe", "reply", "post", "gate", "slow", "big", "adult"} <= names
    imagine = next(c for c in fake.commands if c["name"] == "imagine")
    assert [o["name"] for o in imagine["options"]] == ["prompt", "seed", "style"]
    methods = [(r.method, r.path) for r in fake.requests[:3]]
    assert methods[0] == ("GET", "/users/@me")
    assert methods[1] == ("GET", "/oauth2/applications/@me")
    assert methods[2] == ("PUT", f"/applications/{fake.application_id}/commands")
    assert fake.identify_count == 1 and fake.gateway_connections == 1
    guild = bot.get_guild(int(fake.guild.id))
    assert guild is not None and guild.get_channel(int(fake.channel.id)) is not None
    assert fake.violations == []


async def test_stop_restores_discord_globals(fake: FakeDiscord) -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    with pointed_at(fake):
        assert fake.api_base_url == discord.http.Route.BASE
        assert yarl.URL(fake.gateway_url) == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


# ---------------------------------------------------------------------- the seedgrid flows


async def test_slash_defer_then_edit_with_file(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "imagine", prompt="a cat", seed=5, style="anime")
    first = await ix.wait_response()
    assert first.type == 5  # deferred, "thinking"
    assert ix.ack_latency is not None and 0 <= ix.ack_latency < 3
    message = await ix.wait_original(lambda m: bool(m["attachments"]))
    assert message["content"] == "**a cat** seed=5 style=anime"
    assert not message["flags"] & LOADING
    assert message["type"] == 20 and message["interaction_metadata"]["user"]["id"] == alice.id
    (att,) = message["attachments"]
    assert att["filename"] == "grid.png" and att["content_type"] == "image/png"
    assert (att["width"], att["height"]) == (4, 2)
    assert fake.attachment_bytes(message, "grid.png") == png_bytes(seed=5)
    assert att["size"] == len(png_bytes(seed=5))
    # the CDN URL serves the same bytes
    async with aiohttp.ClientSession() as session, session.get(att["url"]) as resp:
        assert resp.status == 200 and await resp.read() == png_bytes(seed=5)
    buttons = [c["custom_id"] for row in message["components"] for c in row["components"]]
    assert buttons == ["tile:5:0", "tile:5:1", "tile:5:2", "tile:5:3"]
    assert message in fake.messages(fake.channel)
    assert fake.violations == []


async def test_dynamic_item_button_updates_message(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "imagine", prompt="dog", seed=7)
    grid = await ix.wait_original(lambda m: bool(m["components"]))
    click = await fake.click(alice, grid, "tile:7:2")
    assert (await click.wait_response()).type == 7
    updated = await fake.wait_for_message(lambda m: m["id"] == grid["id"] and m["content"].startswith("tile 2"))
    assert updated["edited_timestamp"] is not None
    assert [a["filename"] for a in updated["attachments"]] == ["tile-2.png"]  # old grid.png dropped
    assert fake.attachment_bytes(updated) == png_bytes(seed=9)
    assert len(fake.message_history(grid)) == 3  # loading, grid, tile
    with pytest.raises(FakeDiscordError, match="no component"):
        await fake.click(alice, grid, "tile:7:9")
    assert fake.violations == []


async def test_modal_roundtrip(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "describe")
    assert (await ix.wait_response()).type == 9
    assert ix.modal is not None and ix.modal["title"] == "Describe your picture"
    with pytest.raises(FakeDiscordError, match="required"):
        await fake.submit_modal(alice, ix, {"mood": "calm"})
    with pytest.raises(FakeDiscordError, match="no input"):
        await fake.submit_modal(alice, ix, {"note": "x", "colour": "red"})
    submit = await fake.submit_modal(alice, ix, {"note": "sunset please"})
    reply = await submit.wait_response()
    assert reply.type == 4 and reply.body["data"]["flags"] & EPHEMERAL
    original = await submit.wait_original()
    assert original["content"] == "noted: sunset please / -" and original["flags"] & EPHEMERAL
    assert original not in fake.messages(include_ephemeral=False)
    assert fake.violations == []


async def test_channel_send_reply_and_followup_files(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "reply")
    follow = await ix.wait_followup(lambda m: bool(m["attachments"]))
    original = ix.original
    assert original is not None and original["content"] == "original"
    assert fake.attachment_bytes(original, "preview.png") == png_bytes(seed=1)
    image = original["embeds"][0]["image"]  # attachment://preview.png resolved to the attachment
    assert image["url"] == original["attachments"][0]["url"] and (image["width"], image["height"]) == (4, 2)
    reply = next(m for m in fake.messages() if m["content"] == "a reply")
    assert reply["type"] == 19
    assert reply["message_reference"]["message_id"] == original["id"]
    assert reply["referenced_message"]["id"] == original["id"]
    assert fake.attachment_bytes(reply, "reply.txt") == b"reply-bytes"
    assert reply["attachments"][0]["content_type"].startswith("text/plain")
    assert fake.attachment_bytes(follow, "follow.png") == png_bytes(seed=9)
    assert follow["interaction_metadata"]["original_response_message_id"] == original["id"]
    assert [m["content"] for m in fake.messages()][-3:] == ["original", "a reply", "a follow-up"]
    assert fake.violations == []


# ---------------------------------------------------------------------- Discord's rules


async def test_slash_checks_registered_options(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    with pytest.raises(FakeDiscordError, match="not registered"):
        await fake.slash(alice, "nope")
    with pytest.raises(FakeDiscordError, match="required"):
        await fake.slash(alice, "imagine", seed=1)
    with pytest.raises(FakeDiscordError, match="not one of"):
        await fake.slash(alice, "imagine", prompt="x", style="cubism")
    with pytest.raises(FakeDiscordError, match="integer"):
        await fake.slash(alice, "imagine", prompt="x", seed="5")
    with pytest.raises(FakeDiscordError, match="outside"):
        await fake.slash(alice, "imagine", prompt="x", seed=-1)
    with pytest.raises(FakeDiscordError, match="unknown option"):
        await fake.slash(alice, "imagine", prompt="x", sed=1)
    with pytest.raises(FakeDiscordError, match="NSFW"):
        await fake.slash(alice, "adult")
    ix = await fake.slash(alice, "adult", channel=fake.nsfw_channel)
    assert (await ix.wait_original())["content"] == "nsfw ok"
    assert fake.interactions == [ix]


async def test_interaction_payload_is_spec_shaped(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "imagine", prompt="shape", seed=1)
    spec = load_spec()
    payload = ix.payload
    assert payload["attachment_size_limit"] == 10 * 1024 * 1024
    assert payload["data"]["options"] == [
        {"name": "prompt", "type": 3, "value": "shape"},
        {"name": "seed", "type": 4, "value": 1},
    ]
    assert spec.validate_component("GuildMemberResponse", payload["member"]) == []
    assert spec.validate_component("GuildChannelResponse", payload["channel"]) == []
    await ix.wait_original(lambda m: bool(m["attachments"]))
    click = await fake.click(alice, ix.original or {}, "tile:1:0")
    assert spec.validate_component("MessageResponse", click.payload["message"]) == []
    assert click.payload["data"] == {"custom_id": "tile:1:0", "component_type": 2, "id": 2}
    await click.wait_response()


async def test_three_second_rule(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "slow", name="late")
    fake.advance(3.5)  # the bot "took" 3.5 s
    bot.gates["late"].set()
    error = await bot.next_error()
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert ix.responses == [] and ix.rejected[0].code == 10062
    assert fake.violations == []
    assert any("10062" in e for e in fake.protocol_errors)


async def test_double_acknowledgement_is_rejected(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "adult", channel=fake.nsfw_channel)
    await ix.wait_response()
    url = f"{fake.api_base_url}/interactions/{ix.id}/{ix.token}/callback"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"type": 4, "data": {"content": "again"}}) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["code"] == 40060
    assert len(ix.responses) == 1 and ix.rejected[0].code == 40060


async def test_webhook_token_expires_after_15_minutes(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "gate", name="expiry")
    assert (await ix.wait_response()).type == 5
    fake.advance(15 * 60 + 1)
    bot.gates["expiry"].set()
    error = await bot.next_error()
    assert isinstance(error, discord.HTTPException) and error.status == 401 and error.code == 50027
    assert ix.original is not None and ix.original["flags"] & LOADING  # never edited


async def test_upload_limit() -> None:
    async with FakeDiscord(upload_limit=1000) as small, running(ProbeBot(), small) as probe:
        ix = await small.slash(small.member, "big", size=999)
        message = await ix.wait_original()
        assert ix.payload["attachment_size_limit"] == 1000
        assert len(small.attachment_bytes(message)) == 999
        await small.slash(small.member, "big", size=1001)
        error = await probe.next_error()
        assert isinstance(error, discord.HTTPException) and error.status == 413 and error.code == 40005
        assert small.violations == []


async def test_modal_rules_come_from_the_schema(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "silent")
    url = f"{fake.api_base_url}/interactions/{ix.id}/{ix.token}/callback"
    text_input: dict[str, Any] = {"type": 4, "custom_id": "a", "style": 1, "label": "L" * 46}
    modal: dict[str, Any] = {
        "type": 9,
        "data": {"custom_id": "m", "title": "T" * 46, "components": [{"type": 1, "components": [text_input]}]},
    }
    async with aiohttp.ClientSession() as session, session.post(url, json=modal) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["code"] == 50035
    assert set(body["errors"]["data"]) == {"title", "components"}
    assert "_errors" in body["errors"]["data"]["title"]
    assert len(fake.violations) == 1 and "title" in fake.violations[0]
    fake.violations.clear()
    # a valid modal is accepted; a modal answering a modal submit is not
    text_input["label"] = "Label"
    modal["data"]["title"] = "Title"
    async with aiohttp.ClientSession() as session, session.post(url, json=modal) as resp:
        assert resp.status == 204
    submit = await fake.submit_modal(alice, ix, {"a": "value"})
    assert submit.payload["data"]["components"][0]["components"][0] == {
        "type": 4,
        "id": 2,
        "custom_id": "a",
        "value": "value",
    }
    url = f"{fake.api_base_url}/interactions/{submit.id}/{submit.token}/callback"
    async with aiohttp.ClientSession() as session, session.post(url, json=modal) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == 50035
    assert len(fake.violations) == 1 and "MODAL" in fake.violations[0]
    fake.violations.clear()


# ---------------------------------------------------------------------- validation of raw requests


async def test_malformed_requests_are_violations(fake: FakeDiscord) -> None:
    base = fake.api_base_url
    channel = fake.channel.id
    async with aiohttp.ClientSession(headers=bot_headers(fake)) as session:
        bad = {"content": 5, "embeds": [{"title": "t" * 300}], "message_reference": {"message_id": "abc"}}
        async with session.post(f"{base}/channels/{channel}/messages", json=bad) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["code"] == 50035 and body["message"] == "Invalid Form Body"
            assert set(body["errors"]) == {"content", "embeds", "message_reference"}
            assert body["errors"]["embeds"]["0"]["title"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
        async with session.post(f"{base}/channels/{channel}/messages", json={}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50006
        async with session.post(f"{base}/channels/{channel}/messages", json={"content": "x" * 2001}) as resp:
            assert resp.status == 400  # the spec says 4000; bots are limited to 2000
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("payload_json", json.dumps({"content": "hi", "attachments": [{"id": 0, "filename": "a.txt"}]}))
        form.add_field("files[0]", b"aaa", filename="a.txt")
        form.add_field("files[1]", b"bbb", filename="b.txt")
        async with session.post(f"{base}/channels/{channel}/messages", data=form) as resp:
            body = await resp.json()
            assert resp.status == 400 and "files[1]" in body["errors"]
        async with session.get(f"{base}/channels/{channel}/nonsense") as resp:
            assert resp.status == 404
        async with session.get(f"{base}/channels/not-a-snowflake") as resp:
            assert resp.status == 400
        async with session.get(f"{base}/users/@me", headers={"Authorization": "Bot wrong"}) as resp:
            assert resp.status == 401
    assert len(fake.violations) == 6
    assert "POST /channels/{channel_id}/messages -> 400 50035" in fake.violations[0]
    assert "no such route" in fake.violations[4]
    assert fake.messages() == []
    assert [r.status for r in fake.requests] == [400, 400, 400, 400, 404, 400, 401]


async def test_responses_validate_and_raw_rest(fake: FakeDiscord, alice: Member) -> None:
    base = fake.api_base_url
    async with aiohttp.ClientSession(headers=bot_headers(fake)) as session:
        form = aiohttp.FormData(quote_fields=False)
        form.add_field(
            "payload_json",
            json.dumps({"content": f"hi {alice.mention}", "attachments": [{"id": "0", "filename": "x.png"}]}),
        )
        form.add_field("files[0]", png_bytes(), filename="ignored.png", content_type="application/octet-stream")
        async with session.post(f"{base}/channels/{fake.channel.id}/messages", data=form) as resp:
            created = await resp.json()
            assert resp.status == 200
            assert resp.headers["X-RateLimit-Limit"] == "50" and resp.headers["X-RateLimit-Remaining"] == "49"
        assert created["attachments"][0]["filename"] == "x.png" and created["mentions"][0]["id"] == alice.id
        keep = {"content": "edited", "attachments": [{"id": created["attachments"][0]["id"]}]}
        async with session.patch(f"{base}/channels/{fake.channel.id}/messages/{created['id']}", json=keep) as resp:
            edited = await resp.json()
        assert edited["attachments"] == created["attachments"] and edited["edited_timestamp"]
        async with session.patch(
            f"{base}/channels/{fake.channel.id}/messages/{created['id']}", json={"attachments": []}
        ) as resp:
            assert (await resp.json())["attachments"] == []
        async with session.get(f"{base}/channels/{fake.channel.id}/messages", params={"limit": "1"}) as resp:
            assert [m["id"] for m in await resp.json()] == [created["id"]]
        async with session.delete(f"{base}/channels/{fake.channel.id}/messages/{created['id']}") as resp:
            assert resp.status == 204
        async with session.get(f"{base}/channels/{fake.channel.id}/messages/{created['id']}") as resp:
            assert resp.status == 404 and (await resp.json())["code"] == 10008
        async with session.get(f"{base}/channels/{fake.nsfw_channel.id}") as resp:
            assert (await resp.json())["nsfw"] is True
        async with session.get(f"{base}/gateway/bot") as resp:
            assert (await resp.json())["url"] == fake.gateway_url
        async with session.get(f"{base}/applications/@me") as resp:
            assert (await resp.json())["id"] == fake.application_id
        async with session.get(f"{base}/applications/{fake.application_id}/commands") as resp:
            assert await resp.json() == []
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{base}/gateway") as resp:
        assert resp.status == 200  # no auth needed
    assert fake.violations == []


# ---------------------------------------------------------------------- resilience


async def test_drop_gateway_resumes_and_delivers(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    await fake.drop_gateway()
    ix = await fake.slash(alice, "imagine", prompt="after the drop", seed=3)  # waits for the RESUME replay
    message = await ix.wait_original(lambda m: bool(m["attachments"]))
    assert message["content"].startswith("**after the drop**")
    assert fake.gateway_connections == 2 and fake.identify_count == 1 and fake.resume_count == 1
    assert (6, "/gateway/resume") in fake.gateway_ops  # RESUME went to READY's resume_gateway_url
    fake.request_reconnect()  # opcode 7
    await fake.wait_for_resume(2)
    ix = await fake.slash(alice, "adult", channel=fake.nsfw_channel)
    assert (await ix.wait_original())["content"] == "nsfw ok"
    await fake.drop_gateway(code=4000)  # a close frame with a resumable code
    ix = await fake.slash(alice, "adult", channel=fake.nsfw_channel)
    assert (await ix.wait_original())["content"] == "nsfw ok"
    assert fake.resume_count == 3 and fake.identify_count == 1
    fake.invalidate_session(resumable=False)  # opcode 9: discord.py IDENTIFYs again
    await fake.wait_until_ready()
    assert fake.identify_count == 2
    ix = await fake.slash(alice, "adult", channel=fake.nsfw_channel)
    assert (await ix.wait_original())["content"] == "nsfw ok"
    assert fake.violations == []


async def test_heartbeats_are_acknowledged() -> None:
    async with FakeDiscord(heartbeat_interval=50) as quick, running(ProbeBot(), quick) as probe:
        await quick.wait_for_gateway_op(1, count=3)
        assert 0 <= probe.latency < 1
        assert quick.gateway_connections == 1  # no zombie-connection reconnects


async def test_429_is_retried_and_message_arrives_once(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    injection = fake.inject("POST", r"^/channels/\d+/messages$", status=429, retry_after=0.2)
    await fake.slash(alice, "post")
    await fake.wait_for_message(lambda m: m["content"] == "posted")
    posts = [r for r in fake.requests if r.method == "POST" and re.fullmatch(r"/channels/\d+/messages", r.path)]
    assert [r.status for r in posts] == [429, 200]
    assert posts[1].timestamp - posts[0].timestamp >= 0.2
    assert [m["content"] for m in fake.messages() if m["content"] == "posted"] == ["posted"]
    assert injection.remaining == 0 and fake.violations == []


async def test_attachment_option_and_resolved_users(fake: FakeDiscord, bot: ProbeBot) -> None:
    command = {
        "name": "upscale",
        "description": "d",
        "options": [
            {"type": 11, "name": "image", "description": "d", "required": True},
            {"type": 6, "name": "for", "description": "d"},
        ],
    }
    async with aiohttp.ClientSession(headers=bot_headers(fake)) as session:
        url = f"{fake.api_base_url}/applications/{fake.application_id}/guilds/{fake.guild.id}/commands"
        async with session.put(url, json=[command]) as resp:
            assert resp.status == 200 and (await resp.json())[0]["guild_id"] == fake.guild.id
    assert fake.guild_commands()[0]["name"] == "upscale"
    bob = fake.add_member("bob")
    ix = await fake.slash(fake.member, "upscale", image=Upload("in.png", png_bytes()), options={"for": bob})
    data = ix.payload["data"]
    assert data["guild_id"] == fake.guild.id
    (att_id,) = data["resolved"]["attachments"]
    attachment = data["resolved"]["attachments"][att_id]
    assert attachment["filename"] == "in.png" and attachment["size"] == len(png_bytes())
    assert data["resolved"]["users"][bob.id]["username"] == "bob"
    assert "user" not in data["resolved"]["members"][bob.id]
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as resp:
        assert await resp.read() == png_bytes()
    assert fake.violations == []


async def test_message_context_menu_command(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    quote = next(c for c in fake.commands if c["name"] == "Quote it")
    assert quote["type"] == 3 and not quote.get("description") and not quote.get("options")
    posted = await fake.slash(alice, "reply")
    message = await posted.wait_original(lambda m: bool(m["attachments"]))
    ix = await fake.message_command(alice, message, "Quote it", locale="ko")
    data = ix.payload["data"]
    assert data["type"] == 3 and data["target_id"] == message["id"] and data["name"] == "Quote it"
    assert data["resolved"]["messages"][message["id"]] == fake.message(message)
    assert ix.payload["locale"] == "ko" and ix.payload["type"] == 2 and "message" not in ix.payload
    assert (await ix.wait_response()).type == 4
    answer = ix.original
    assert answer is not None and answer["flags"] & EPHEMERAL
    files = ",".join(a["filename"] for a in message["attachments"])
    assert answer["content"] == f"ko|{message['id']}|{fake.bot_user.id}|{message['content']}|{files}"
    with pytest.raises(FakeDiscordError, match="not registered"):
        await fake.message_command(alice, message, "imagine")  # a slash command is not a message command
    # a locale reaches component interactions too
    grid = await (await fake.slash(alice, "imagine", prompt="a cat", seed=5)).wait_original(
        lambda m: bool(m["attachments"])
    )
    click = await fake.click(alice, grid, "tile:5:0", locale="ko")
    assert click.payload["locale"] == "ko" and (await click.wait_response()).type == 7
    assert fake.violations == []


async def test_context_menu_registration_rules(fake: FakeDiscord) -> None:
    bad = [{"name": "Show it", "type": 3, "description": "not allowed"}, {"name": "Ok", "type": 3, "options": []}]
    async with aiohttp.ClientSession(headers=bot_headers(fake)) as session:
        url = f"{fake.api_base_url}/applications/{fake.application_id}/commands"
        async with session.put(url, json=bad) as resp:
            body = await resp.json()
            assert resp.status == 400 and "description" in json.dumps(body["errors"]["0"])
        async with session.put(url, json=bad[1:]) as resp:
            assert resp.status == 200
    assert [c["type"] for c in fake.commands] == [3]
    fake.violations.clear()


async def test_5xx_is_retried_by_the_webhook_adapter(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    fake.inject("PATCH", r"/messages/@original$", status=500)
    ix = await fake.slash(alice, "imagine", prompt="flaky", seed=2)
    message = await ix.wait_original(lambda m: bool(m["attachments"]), timeout=5)
    assert [r.status for r in fake.requests if r.method == "PATCH"] == [500, 200]
    assert message["content"].startswith("**flaky**")
    assert fake.violations == []


async def test_gateway_message_events_and_content_intent(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    await fake.slash(alice, "post")
    seen = await bot.next_message()
    while seen.content != "posted":
        seen = await bot.next_message()
    assert seen.author == bot.user and str(seen.channel.id) == fake.channel.id
    # without the privileged MESSAGE_CONTENT intent, user messages arrive without content ...
    await fake.say(alice, "hello there")
    seen = await bot.next_message()
    assert str(seen.author.id) == alice.id and seen.content == ""
    # ... unless they mention the bot
    await fake.say(alice, f"{fake.bot_user.mention} hi")
    seen = await bot.next_message()
    assert bot.user is not None
    assert seen.content.endswith(" hi") and seen.mentions[0].id == bot.user.id
    assert fake.messages()[-1]["content"] == f"{fake.bot_user.mention} hi"


async def test_select_menu_and_ephemeral_privacy(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "pick")
    menu = await ix.wait_original()
    assert menu["flags"] & EPHEMERAL
    bob = fake.add_member("bob")
    with pytest.raises(FakeDiscordError, match="cannot see"):
        await fake.select(bob, menu, "flavour", ["mint"])
    with pytest.raises(FakeDiscordError, match="not one of"):
        await fake.select(alice, menu, "flavour", ["chocolate"])
    with pytest.raises(FakeDiscordError, match=r"takes 1\.\.2 values"):
        await fake.select(alice, menu, "flavour", ["mint", "lemon", "vanilla"])
    choice = await fake.select(alice, menu, "flavour", ["mint", "lemon"])
    assert (await choice.wait_original())["content"] == "picked mint+lemon"
    assert fake.violations == []


async def test_autocomplete(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    choices = await fake.autocomplete(alice, "tag", "name", name="ca")
    assert choices == [{"name": "cat", "value": "cat"}, {"name": "castle", "value": "castle"}]
    assert fake.violations == []


async def test_first_followup_after_thinking_defer_replaces_loading(
    fake: FakeDiscord, bot: ProbeBot, alice: Member
) -> None:
    ix = await fake.slash(alice, "think")
    message = await ix.wait_followup()
    assert message["id"] == ix.original_message_id and message["flags"] & EPHEMERAL
    assert not message["flags"] & LOADING and message["content"] == "thought it through"
    assert fake.attachment_bytes(message, "notes.txt") == b"notes"
    assert [m["id"] for m in fake.messages()] == [message["id"]]
    assert fake.violations == []


async def test_fuzzed_custom_ids_do_not_break_the_bot(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    ix = await fake.slash(alice, "imagine", prompt="fuzz", seed=4)
    grid = await ix.wait_original(lambda m: bool(m["components"]))
    for custom_id in ("tile:4:9", "tile:x:1", "", "tile:" + "9" * 90):
        fuzz = await fake.click_raw(alice, grid, custom_id)
        assert fuzz.payload["data"]["custom_id"] == custom_id
    edited = asyncio.create_task(
        fake.wait_for_message(lambda m: m["content"].startswith("tile"), include_existing=False)
    )
    await asyncio.sleep(0)  # let the waiter take its baseline
    ok = await fake.click(alice, grid, "tile:4:1")
    assert (await ok.wait_response()).type == 7
    later = await edited
    assert later["id"] == grid["id"] and later["content"] == "tile 1 of seed 4"


async def test_deferred_update_on_a_channel_message(fake: FakeDiscord, bot: ProbeBot, alice: Member) -> None:
    await fake.slash(alice, "panel")
    panel = await fake.wait_for_message(lambda m: m["content"] == "panel")
    assert "webhook_id" not in panel and panel["author"]["id"] == fake.bot_user.id
    click = await fake.click(alice, panel, "panel:go")
    assert (await click.wait_response()).type == 6
    pressed = await click.wait_original(lambda m: m["content"] != "panel")
    assert pressed["id"] == panel["id"]
    assert pressed["content"] == "panel pressed by alice" and pressed["components"] == []
    assert fake.violations == []
