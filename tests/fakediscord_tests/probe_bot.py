"""A minimal real discord.py bot that exercises what seedgrid does: slash commands, defer + file edit,
DynamicItem buttons, modals, replies with files and follow-ups."""

# The test-facing API takes ``timeout=`` arguments by design (wait_until_ready(timeout=10), ...).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import io
import re
import struct
import zlib
from collections import defaultdict
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands


def png_bytes(width: int = 4, height: int = 2, seed: int = 0) -> bytes:
    """A tiny valid PNG whose pixels depend on ``seed``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((seed + x + y) % 256 for x in range(width * 3)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class TileButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"tile:(?P<seed>\d+):(?P<n>[0-3])"):
    def __init__(self, seed: int, n: int) -> None:
        super().__init__(
            discord.ui.Button(label=f"U{n + 1}", style=discord.ButtonStyle.secondary, custom_id=f"tile:{seed}:{n}")
        )
        self.seed = seed
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> TileButton:
        return cls(int(match["seed"]), int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        # UPDATE_MESSAGE (type 7) with a new file, keeping nothing of the old attachments.
        data = png_bytes(seed=self.seed + self.n)
        await interaction.response.edit_message(
            content=f"tile {self.n} of seed {self.seed}",
            attachments=[discord.File(io.BytesIO(data), filename=f"tile-{self.n}.png")],
        )


class DescribeModal(discord.ui.Modal, title="Describe your picture"):
    note: discord.ui.TextInput[DescribeModal] = discord.ui.TextInput(label="Note", custom_id="note", max_length=200)
    mood: discord.ui.TextInput[DescribeModal] = discord.ui.TextInput(
        label="Mood", custom_id="mood", required=False, style=discord.TextStyle.paragraph
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"noted: {self.note.value} / {self.mood.value or '-'}", ephemeral=True)


def grid_view(seed: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for n in range(4):
        view.add_item(TileButton(seed, n))
    return view


class FlavourSelect(discord.ui.Select[discord.ui.View]):
    def __init__(self) -> None:
        options = [discord.SelectOption(label=f, value=f) for f in ("vanilla", "mint", "lemon")]
        super().__init__(custom_id="flavour", options=options, min_values=1, max_values=2)

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"picked {'+'.join(self.values)}", ephemeral=True)


TAGS = ("cat", "castle", "dog", "dragon")


class PanelView(discord.ui.View):
    """A persistent view on a plain channel message; its button defers (type 6) and edits @original."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Go", style=discord.ButtonStyle.primary, custom_id="panel:go")
    async def go(self, interaction: discord.Interaction, button: discord.ui.Button[PanelView]) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content=f"panel pressed by {interaction.user.name}", view=None)


class ProbeBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.errors: asyncio.Queue[BaseException] = asyncio.Queue()
        self.seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        self._register()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(TileButton)
        self.add_view(PanelView())
        await self.tree.sync()

        @self.tree.error
        async def on_tree_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            await self.errors.put(error)

    async def on_message(self, message: discord.Message) -> None:
        await self.seen.put(message)

    async def next_message(self, timeout: float = 5.0) -> discord.Message:
        return await asyncio.wait_for(self.seen.get(), timeout)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None  # skip discord.py's 5 s pause before re-IDENTIFYing; the fake has no identify limit

    async def next_error(self, timeout: float = 5.0) -> BaseException:
        return await asyncio.wait_for(self.errors.get(), timeout)

    def _register(self) -> None:
        tree = self.tree

        @tree.context_menu(name="Quote it")
        async def quote_it(interaction: discord.Interaction, message: discord.Message) -> None:
            # the resolved message, as discord.py builds it from the interaction's data
            files = ",".join(a.filename for a in message.attachments)
            text = f"{interaction.locale}|{message.id}|{message.author.id}|{message.content}|{files}"
            await interaction.response.send_message(text, ephemeral=True)

        @tree.command(name="imagine", description="Render a 2x2 grid")
        @app_commands.describe(prompt="What to draw", seed="Seed", style="Style")
        @app_commands.choices(
            style=[app_commands.Choice(name="Photo", value="photo"), app_commands.Choice(name="Anime", value="anime")]
        )
        async def imagine(
            interaction: discord.Interaction,
            prompt: str,
            seed: app_commands.Range[int, 0, 2**32 - 1] = 0,
            style: str = "photo",
        ) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(
                content=f"**{prompt}** seed={seed} style={style}",
                attachments=[discord.File(io.BytesIO(png_bytes(seed=seed)), filename="grid.png")],
                view=grid_view(seed),
            )

        @tree.command(name="describe", description="Open a modal")
        async def describe(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(DescribeModal())

        @tree.command(name="reply", description="Reply with files")
        async def reply(interaction: discord.Interaction) -> None:
            embed = discord.Embed(title="preview").set_image(url="attachment://preview.png")
            preview = discord.File(io.BytesIO(png_bytes(seed=1)), filename="preview.png")
            await interaction.response.send_message("original", file=preview, embed=embed)
            original = await interaction.original_response()
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send(
                "a reply", reference=original, file=discord.File(io.BytesIO(b"reply-bytes"), filename="reply.txt")
            )
            await interaction.followup.send(
                "a follow-up", file=discord.File(io.BytesIO(png_bytes(seed=9)), filename="follow.png"), wait=True
            )

        @tree.command(name="post", description="channel.send")
        async def post(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("on it", ephemeral=True)
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send("posted")

        @tree.command(name="gate", description="Defer, wait for the test, then edit")
        async def gate(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.defer()
            await self.gates[name].wait()
            try:
                await interaction.edit_original_response(content="late edit")
            except discord.HTTPException as exc:
                await self.errors.put(exc)

        @tree.command(name="slow", description="Wait for the test before the first response")
        async def slow(interaction: discord.Interaction, name: str) -> None:
            await self.gates[name].wait()
            try:
                await interaction.response.send_message("too late?")
            except discord.HTTPException as exc:
                await self.errors.put(exc)

        @tree.command(name="big", description="Upload a file of a given size")
        async def big(interaction: discord.Interaction, size: int) -> None:
            await interaction.response.defer()
            try:
                await interaction.edit_original_response(
                    content="big", attachments=[discord.File(io.BytesIO(b"x" * size), filename="big.bin")]
                )
            except discord.HTTPException as exc:
                await self.errors.put(exc)

        @tree.command(name="adult", description="Only in NSFW channels", nsfw=True)
        async def adult(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("nsfw ok")

        @tree.command(name="pick", description="An ephemeral select menu")
        async def pick(interaction: discord.Interaction) -> None:
            view = discord.ui.View()
            view.add_item(FlavourSelect())
            await interaction.response.send_message("pick one", view=view, ephemeral=True)

        @tree.command(name="tag", description="Autocomplete")
        async def tag(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"tag {name}")

        @tag.autocomplete("name")
        async def tag_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=t, value=t) for t in TAGS if t.startswith(current)]

        @tree.command(name="think", description="Thinking defer, then a follow-up")
        async def think(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True, ephemeral=True)
            await interaction.followup.send("thought it through", file=discord.File(io.BytesIO(b"notes"), "notes.txt"))

        @tree.command(name="panel", description="Post a persistent panel with a button")
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("panel posted", ephemeral=True)
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send("panel", view=PanelView())

        @tree.command(name="silent", description="Never answers (tests answer raw)")
        async def silent(interaction: discord.Interaction) -> None:
            return None
