"""/settings' further policies through the fake Discord: a server's own blocklist entries, channels and
roles, who may press a grid's buttons, private results (/preferences private), GPU-seconds allowances —
and hypothesis over what an admin can type (a clear private answer, nothing stored, never a ping)."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from bot.config import RefineSettings, Settings
from bot.engine import Engine
from bot.engine.store import Store
from bot.inputs import UserInputError
from bot.jobs import JobKind, JobRequest, JobStatus
from bot.rules.server import MAX_ENTRY, ServerSettings, parse_blocklist_entry, parse_suggestions
from tests import store_probe
from tests.cogs.conftest import BotFactory, has_grid
from tests.cogs.test_settings_e2e import EPHEMERAL, private
from tests.fakediscord import FakeDiscord, Permissions

DEFERRED = 5


async def test_a_server_blocklist_entry_refuses_prompts_until_removed(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine, settings: Settings
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        added = await fake.slash(admin, "settings blocklist", action="add", entry="lighthouse")
        assert "`lighthouse` are now refused" in private(await added.wait_response())
        regex = await fake.slash(admin, "settings blocklist", action="add", entry="re:(a+)+$")
        assert "belong in the bot's config file" in private(await regex.wait_response())
        listed = private(await (await fake.slash(admin, "settings blocklist", action="list")).wait_response())
        assert "`lighthouse`" in listed
        before = await store_probe.last_job_id(settings.storage.database)
        refused = await fake.slash(fake.member, "imagine", prompt="a LIGHTHOUSE at dusk", seed=1)
        assert "it matched the server's rule `lighthouse`" in private(await refused.wait_response())
        assert await store_probe.last_job_id(settings.storage.database) == before  # nothing stored
        removed = await fake.slash(admin, "settings blocklist", action="remove", entry="lighthouse")
        assert "no longer on this server's blocklist" in private(await removed.wait_response())
        ok = await fake.slash(fake.member, "imagine", prompt="a lighthouse", seed=1, steps=1, size="small")
        await ok.wait_original(has_grid, timeout=60)
    assert engine.server(guild_id).blocklist == ()


async def test_a_server_narrows_channels_and_roles(fake: FakeDiscord, make_bot: BotFactory, engine: Engine) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    artists = fake.add_role("artists")
    artist = fake.add_member("artist", roles=[artists])
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        other = int(fake.nsfw_channel.id)
        done = await fake.slash(admin, "settings channels", options={"action": "add", "channel": other})
        assert f"<#{other}>" in private(await done.wait_response())
        here = await fake.slash(fake.member, "imagine", prompt="a cat", seed=1)
        assert "not enabled the bot in this channel" in private(await here.wait_response())
        link = f"https://discord.com/channels/{guild_id}/{fake.channel.id}/1"  # /reproduce is held to it too
        again = await fake.slash(fake.member, "reproduce", link=link)
        assert "not enabled the bot in this channel" in private(await again.wait_response())
        await (await fake.slash(admin, "settings channels", action="clear")).wait_response()

        await (await fake.slash(admin, "settings roles", options={"action": "add", "role": artists.id})).wait_response()
        shown = private(await (await fake.slash(admin, "settings show")).wait_response())
        assert f"**Roles** <@&{artists.id}> · set for this server" in shown
        refused = await fake.slash(fake.member, "imagine", prompt="a cat", seed=1)
        assert "limited the bot to some roles" in private(await refused.wait_response())
        ok = await fake.slash(artist, "imagine", prompt="a cat", seed=1, steps=1, size="small")
        await ok.wait_original(has_grid, timeout=60)
        await (await fake.slash(admin, "settings roles", action="clear")).wait_response()
    assert engine.server(guild_id).channels == () and engine.server(guild_id).roles == ()


async def test_buttons_for_the_author_only_and_suggestions(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    stranger = fake.add_member("stranger")
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        who = await fake.slash(admin, "settings buttons", who="author")
        assert "the member who made the grid" in private(await who.wait_response())
        lines = await fake.slash(admin, "settings suggestions", lines="at night | in fog")
        assert "`at night` · `in fog`" in private(await lines.wait_response())
        ix = await fake.slash(fake.member, "imagine", prompt="a barn", seed=1, steps=1, size="small")
        grid = await ix.wait_original(has_grid, timeout=60)
        job = grid["components"][0]["components"][0]["custom_id"].split(":")[2]  # type: ignore[index]
        refused = await fake.click(stranger, grid, f"sg:reroll:{job}")  # type: ignore[arg-type]
        assert "Only the member who made this grid" in private(await refused.wait_response())
        form = await fake.click(fake.member, grid, f"sg:tile:{job}:1")  # type: ignore[arg-type]
        await form.wait_response()
        assert form.modal is not None
        assert form.modal["components"][0]["components"][0]["value"] == "at night\nin fog"  # type: ignore[index]
        await (await fake.slash(admin, "settings buttons", who="file")).wait_response()
        await (await fake.slash(admin, "settings suggestions")).wait_response()
    assert engine.server(guild_id).buttons is None and engine.server(guild_id).suggestions is None


async def test_private_results_stay_with_the_member_and_are_stored(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        mine = await fake.slash(fake.member, "preferences private", value=True)
        assert "does not allow private results" in private(await mine.wait_response())
        allow = await fake.slash(admin, "settings private", allowed=True)
        assert "may now have their results privately" in private(await allow.wait_response())

        ix = await fake.slash(fake.member, "imagine", prompt="a secret garden", seed=4, steps=1, size="small")
        response = (await ix.wait_response()).body
        assert response["type"] == DEFERRED and response["data"]["flags"] & EPHEMERAL  # type: ignore[index]
        grid = await ix.wait_original(has_grid, timeout=60)
        assert grid["flags"] & EPHEMERAL
        job_id = int(grid["components"][0]["components"][0]["custom_id"].split(":")[2])  # type: ignore[index]
        stored = await engine.job(job_id)
        assert stored is not None and stored.request.private

        again = await fake.click(fake.member, grid, f"sg:reroll:{job_id}")  # type: ignore[arg-type]
        regrid = await again.wait_original(has_grid, timeout=60)  # a re-roll of a private grid: private too
        assert regrid["flags"] & EPHEMERAL
        public = [m for m in fake.messages(include_ephemeral=False) if m["attachments"]]
        assert public == []  # nothing in the channel for everyone

        shown = private(await (await fake.slash(fake.member, "preferences show")).wait_response())
        assert "**private results** on" in shown
        await (await fake.slash(fake.member, "preferences private", value=False)).wait_response()
        await (await fake.slash(admin, "settings private", allowed=False)).wait_response()
    assert not engine.server(guild_id).private and not await engine.wants_private(fake.member.user.id)


async def test_a_gpu_allowance_refuses_privately_and_quota_shows_it(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        set_ix = await fake.slash(admin, "settings quota", options={"role": guild_id, "gpu_seconds": 0})
        assert "may use 0 GPU-seconds a day" in private(await set_ix.wait_response())
        refused = await fake.slash(fake.member, "imagine", prompt="a cat", seed=1)
        body = private(await refused.wait_response())
        assert "You have used your 0 GPU-seconds for today here" in body and "<t:" in body
        left = private(await (await fake.slash(fake.member, "quota")).wait_response())
        assert "There is no daily allowance" in left and "You have 0 of your 0 GPU-seconds left today" in left
        shown = private(await (await fake.slash(admin, "settings show")).wait_response())
        assert f"**Daily GPU allowance** <@&{guild_id}> 0 GPU-seconds" in shown
        await (await fake.slash(admin, "settings quota", options={"role": guild_id})).wait_response()
    assert engine.server(guild_id).gpu_quotas == {}


async def test_gpu_seconds_count_only_jobs_that_finished() -> None:
    store = await Store.open(":memory:")
    try:
        request = JobRequest(
            kind=JobKind.IMAGINE,
            prompt="a cat",
            negative="",
            seed=1,
            steps=1,
            guidance=1.0,
            width=64,
            height=64,
            user_id=5,
            guild_id=7,
            private=True,
        )
        for status, elapsed in ((JobStatus.DONE, 2.5), (JobStatus.CANCELLED, 9.0), (JobStatus.FAILED, 9.0)):
            job = await store.create_job(request)
            await store.mark_finished(job.id, status, elapsed=elapsed)
        waiting = await store.create_job(request)  # still waiting: nothing known yet
        assert (await store.get_job(waiting.id)).request.private  # type: ignore[union-attr]
        since = time.time() - 60
        assert await store.gpu_seconds_since(7, 5, since) == 2.5
        assert await store.gpu_seconds_since(7, 6, since) == 0.0
        assert await store.images_since(7, 5, since) == 8  # the done and the waiting grid
    finally:
        await store.close()


async def test_hostile_values_get_a_private_answer_and_store_nothing(
    fake: FakeDiscord, make_bot: BotFactory, engine: Engine
) -> None:
    admin = fake.add_member("admin", permissions=Permissions.MANAGE_GUILD)
    guild_id = int(fake.channel.guild_id)
    async with make_bot():
        for entry in ("@everyone " * 500, "   ", "re:.*", "<@&1> \u200b"[:1] * 300):
            ix = await fake.slash(admin, "settings blocklist", action="add", entry=entry)
            response = (await ix.wait_response()).body
            assert response["data"]["flags"] & EPHEMERAL  # type: ignore[index]
            assert response["data"]["allowed_mentions"] == {"parse": []}  # type: ignore[index]
        for lines in ("@everyone|" * 10, "a||b", "x" * 5000):
            ix = await fake.slash(admin, "settings suggestions", lines=lines)
            private(await ix.wait_response())
        missing = await fake.slash(admin, "settings blocklist", action="remove", entry="@here " * 900)
        assert len(private(await missing.wait_response())) <= 2000
    assert engine.server(guild_id) == ServerSettings()
    assert fake.violations == []


REFINE = RefineSettings()


@given(raw=st.text(max_size=400))
def test_any_typed_blocklist_entry_is_a_clean_word_entry_or_refused(raw: str) -> None:
    try:
        entry = parse_blocklist_entry(raw)
    except UserInputError as exc:
        refusal = exc.text.key
        assert refusal.startswith("settings.blocklist.")
        return
    assert entry == entry.strip() and 0 < len(entry) <= MAX_ENTRY and "\n" not in entry
    assert not entry.lower().startswith("re:")


@given(raw=st.text(max_size=1200) | st.lists(st.text(max_size=250), max_size=6).map("|".join))
def test_any_typed_suggestions_fit_the_refine_form_or_are_refused(raw: str) -> None:
    try:
        lines = parse_suggestions(raw, REFINE)
    except UserInputError:
        return
    assert 1 <= len(lines) <= 4
    assert all(line and "\n" not in line and len(line) <= REFINE.max_suffix_length for line in lines)


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(
                ["blocklist", "channels", "roles", "buttons", "suggestions", "private", "gpu:1", "quota:x"]
            ),
            st.text(max_size=30),
        )
    )
)
def test_stored_rows_that_no_longer_read_are_skipped(rows: list[tuple[str, str]]) -> None:
    settings = ServerSettings.from_rows(rows)  # never raises: a bad row is as if unset
    assert isinstance(settings.blocklist, tuple) and settings.buttons in (None, "anyone", "author")
