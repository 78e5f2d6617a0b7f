"""Recipes: the **Show recipe** message command and **/reproduce**.

*Show recipe* (Apps → Show recipe on any message) answers privately with what made a seedgrid image: each
tile's prompt and seed, the model and settings, the chain of images it was drawn from (grid → upscale →
vary), and the ``seedgrid`` command line that draws it again. It reads the recipe the engine kept when the
job finished (Discord may serve copies of an image without its PNG chunks).

*/reproduce* takes a PNG (a seedgrid image, or any PNG with AUTOMATIC1111 ``parameters``) or a link to a
seedgrid message, and runs that recipe again through the normal queue, exactly as /imagine runs a job
(the Imagine cog's :meth:`~cogs.imagine._cog.ImagineCog.start_command`): the same grid, pixel for pixel,
on the same model. Every refusal is private and stores nothing.

Recipes come from anyone's files: everything read from them is escaped when shown, every answer is sent
with ``AllowedMentions.none()``, and what they ask for is checked as a member's input is
(:func:`bot.inputs.request_from_recipe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import shlex
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.imaging.png import SIGNATURE
from bot.imaging.recipe import PARAMETERS_KEY, SAMPLERS, Recipe, parse_parameters, read_recipe, read_text_chunks
from bot.inputs import UserInputError, recipe_from_parameters, request_from_recipe
from bot.jobs import Job, JobKind
from bot.texts import ENGLISH, Text, text
from cogs.imagine._messages import EMBED_COLOUR, clip, quote
from cogs.languages import described, locale_of
from cogs.replies import NO_MENTIONS, reply_error

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.engine.models import Catalogue
    from cogs.client import SeedgridBot
    from cogs.imagine._cog import ImagineCog

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 10 * 1024 * 1024
"""The largest attachment /reproduce downloads (a 2048² seedgrid PNG is a few MB)."""
DOWNLOAD_TIMEOUT = 2.0
"""Seconds the download may take: it comes before the acknowledgement, which Discord wants within 3 s."""
MESSAGE_LINK = re.compile(
    r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(?P<guild>\d+|@me)/(?P<channel>\d+)/(?P<message>\d+)/?"
)

# Embed limits (Discord): a description of 4096, fields of 1024, 6000 in all; kept well inside.
_DESCRIPTION = 3000
_FIELD = 1000
_NEGATIVE = 400
_COMMAND = 900


class RecipesCog(commands.Cog, name="Recipes"):
    def __init__(self, bot: SeedgridBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.settings = bot.settings
        self._menu = app_commands.ContextMenu(
            name=ENGLISH["name.show_recipe"],  # translated by cogs.languages (name.show_recipe)
            callback=self.show_recipe,
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False),
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self._menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self._menu.name, type=self._menu.type)

    # --- Show recipe ---

    async def show_recipe(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Privately: the recipe of the seedgrid image on ``message``."""
        if self.bot.user is None or message.author.id != self.bot.user.id:
            await reply_error(interaction, Text("recipe.not_ours"))
            return
        try:
            job, recipe = await self._recipe_here(message.id, interaction.guild_id)
        except UserInputError:
            await reply_error(interaction, Text("recipe.none"))
            return
        job_id = job.id
        filename = next((a.filename for a in message.attachments), "")
        locale = locale_of(interaction)
        embed = recipe_embed(
            job_id,
            recipe,
            locale=locale,
            command=command_lines(recipe, job, self.settings, self.engine.models, filename, locale=locale),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)

    # --- /reproduce ---

    @app_commands.command(name="reproduce", description=described("reproduce.description"))
    @app_commands.describe(image=described("reproduce.image"), link=described("reproduce.link"))
    @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
    @app_commands.allowed_installs(guilds=True, users=False)
    async def reproduce(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        link: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        imagine: ImagineCog | None = self.bot.get_cog("Imagine")  # type: ignore[assignment]
        if imagine is None:  # pragma: no cover - the extensions load together
            raise RuntimeError("the Imagine cog is not loaded")
        denied = imagine.gate.where(interaction, self.engine.server(interaction.guild_id))
        if denied:
            await reply_error(interaction, denied)
            return
        try:
            if (image is None) == (link is None):
                raise UserInputError("recipe.give_one")
            recipe = await (self._from_file(image) if image is not None else self._from_link(interaction, link or ""))
            request = request_from_recipe(recipe, self.engine.models, max_side=self.settings.upscale.max_side)
        except UserInputError as exc:
            await reply_error(interaction, exc.text)
            return
        except ValueError:  # a recipe that passed every check yet makes no valid job
            log.info("a recipe given to /reproduce makes no valid job", exc_info=True)
            name = quote(clip(image.filename if image is not None else link or "", 100))
            await reply_error(interaction, Text("recipe.unreadable", name=name))
            return
        texts = [tile.prompt for tile in request.tiles()]
        await imagine.start_command(interaction, request, *texts, request.negative)

    async def _from_file(self, image: discord.Attachment) -> Recipe:
        name = quote(clip(image.filename, 100))
        if image.size > MAX_FILE_BYTES:
            raise UserInputError("recipe.too_big", name=name, size=image.size / 2**20, limit=MAX_FILE_BYTES / 2**20)
        try:
            data = await asyncio.wait_for(image.read(), DOWNLOAD_TIMEOUT)
        except (TimeoutError, discord.HTTPException):
            raise UserInputError("recipe.download_failed") from None
        if not data.startswith(SIGNATURE) or len(data) > MAX_FILE_BYTES:
            raise UserInputError("recipe.not_png", name=name)
        return await asyncio.to_thread(self._read, data, name)  # up to 10 MB of chunks: off the event loop

    def _read(self, data: bytes, name: str) -> Recipe:
        """The recipe a PNG carries: seedgrid's own chunk, else A1111's ``parameters`` (blocking)."""
        recipe = read_recipe(data)
        if recipe is not None:
            return recipe
        parameters = read_text_chunks(data, keys=frozenset({PARAMETERS_KEY})).get(PARAMETERS_KEY)
        if parameters is None:
            raise UserInputError("recipe.unreadable", name=name)
        return recipe_from_parameters(parse_parameters(parameters), self.engine.models.default)

    async def _from_link(self, interaction: discord.Interaction, link: str) -> Recipe:
        match = MESSAGE_LINK.fullmatch(link.strip())
        if match is None:
            raise UserInputError("recipe.bad_link")
        if match["guild"] != str(interaction.guild_id):
            raise UserInputError("recipe.other_server")
        _, recipe = await self._recipe_here(int(match["message"]), interaction.guild_id)
        return recipe

    async def _recipe_here(self, message_id: int, guild_id: int | None) -> tuple[Job, Recipe]:
        """The job behind a message of the bot's and the recipe kept for it, when that job is this server's.

        Raises :class:`UserInputError`: ``recipe.unknown_message`` when no recipe was kept for the message,
        ``recipe.other_server`` when its job is gone or belongs to another server."""
        found = await self.engine.recipe_of_message(message_id)
        if found is None:
            raise UserInputError("recipe.unknown_message")
        job = await self.engine.job(found[0])
        if job is None or job.request.guild_id != guild_id:
            raise UserInputError("recipe.other_server")
        return job, found[1]


# --- the recipe, as members read it ---


def kind_name(kind: str, locale: str | None) -> str:
    names = {
        JobKind.IMAGINE.value: text("recipe.kind.imagine", locale=locale),
        JobKind.REFINE.value: text("recipe.kind.refine", locale=locale),
        JobKind.UPSCALE.value: text("recipe.kind.upscale", locale=locale),
        JobKind.VARY.value: text("recipe.kind.vary", locale=locale),
    }
    return names.get(kind, kind)


def chain(recipe: Recipe, locale: str | None) -> str:
    """The images behind this one, oldest first: ``grid · seed 8 · 64×64 → upscale · … → variation · …``."""
    levels: list[Recipe] = []
    level: Recipe | None = recipe
    while level is not None:
        levels.append(level)
        level = level.source
    steps = []
    for item in reversed(levels):
        parts = [
            text(
                "recipe.step",
                locale=locale,
                kind=kind_name(item.kind, locale),
                seed=item.tiles[0].seed,
                width=item.width,
                height=item.height,
            )
        ]
        if item.strength is not None:
            parts.append(text("recipe.strength", locale=locale, strength=item.strength))
        if item.parent_job is not None and item.parent_tile is not None:
            parts.append(text("recipe.step_parent", locale=locale, tile=item.parent_tile, job=item.parent_job))
        steps.append(" · ".join(parts))
    steps[-1] += f" ({text('recipe.this', locale=locale)})"
    return " → ".join(steps)


def recipe_embed(job_id: int, recipe: Recipe, *, locale: str | None, command: str) -> discord.Embed:
    """The private answer to Show recipe: well inside Discord's embed limits whatever the prompts hold."""
    embed = discord.Embed(
        title=clip(text("recipe.title", locale=locale, job=job_id, kind=kind_name(recipe.kind, locale)), 256),
        colour=EMBED_COLOUR,
    )
    budget = _DESCRIPTION // len(recipe.tiles) - 40
    lines = [
        text("recipe.tile", locale=locale, index=i, seed=tile.seed, prompt=quote(clip(tile.prompt, budget)))
        for i, tile in enumerate(recipe.tiles, start=1)
    ]
    embed.description = clip("\n".join(lines), _DESCRIPTION)
    model = text(
        "recipe.model_line",
        locale=locale,
        model=quote(recipe.model or "?"),
        family=quote(recipe.family or "?"),
        model_id=clip(recipe.model_id.replace("`", "'"), 300),
    )
    embed.add_field(name=text("recipe.model", locale=locale), value=clip(model, _FIELD), inline=False)
    settings = text(
        "recipe.settings_line",
        locale=locale,
        steps=recipe.steps,
        guidance=recipe.guidance,
        width=recipe.width,
        height=recipe.height,
        sampler=quote(SAMPLERS.get(recipe.scheduler, recipe.scheduler) or "?"),
    )
    if recipe.strength is not None:
        settings += " · " + text("recipe.strength", locale=locale, strength=recipe.strength)
    embed.add_field(name=text("recipe.settings", locale=locale), value=clip(settings, _FIELD), inline=False)
    if recipe.negative:
        negative = quote(clip(recipe.negative, _NEGATIVE))
        embed.add_field(name=text("recipe.negative", locale=locale), value=clip(negative, _FIELD), inline=False)
    if recipe.source is not None:
        embed.add_field(
            name=text("recipe.chain", locale=locale), value=clip(chain(recipe, locale), _FIELD), inline=False
        )
    embed.add_field(name=text("recipe.cli", locale=locale), value=clip(command, _FIELD + 20), inline=False)
    return embed


# --- the command line that draws it again ---


def command_lines(
    recipe: Recipe, job: Job, settings: Settings, models: Catalogue, filename: str, *, locale: str | None
) -> str:
    """The ``seedgrid`` command that draws ``recipe``'s image again, in a code block.

    A grid or refined grid drawn from noise: the ``seedgrid imagine`` line with its prompt, seed and settings,
    given only when the command line's own parser and checks turn it back into this very recipe. Anything
    else (an upscale, a variation, a prompt too long or awkward to quote): ``seedgrid reproduce`` of the
    posted PNG, which carries the whole recipe.
    """
    line = imagine_line(recipe, job, settings, models)
    if line is not None:
        return f"```sh\n{line}\n```"
    safe = re.sub(r"[^\w.-]", "_", filename)[:80]
    if not safe.lower().endswith(".png"):  # re-encoded to fit the upload limit: no chunks to read
        return text("recipe.cli_none", locale=locale)
    reproduce = f"seedgrid reproduce {safe} --config config.toml --out again/"
    return f"{text('recipe.cli_file', locale=locale, file=safe)}\n```sh\n{reproduce}\n```"


def imagine_line(recipe: Recipe, job: Job, settings: Settings, models: Catalogue) -> str | None:
    from bot.__main__ import CommandLineError, build_parser, request_from_args

    preset = models.get(recipe.model)
    if recipe.source is not None or preset is None:
        return None
    size = next((s.name for s in preset.sizes if (s.width, s.height) == (recipe.width, recipe.height)), None)
    if size is None:
        return None
    first = recipe.tiles[0]
    prompt, seed = first.prompt, first.seed
    suffixes: tuple[str, ...] = ()
    if recipe.kind == JobKind.REFINE.value:
        if job.request.kind is not JobKind.REFINE or job.request.source:
            return None
        prompt, seed, suffixes = job.request.prompt, job.request.seed, job.request.suffixes
    args = ["imagine", prompt, "--seed", str(seed), "--steps", str(recipe.steps), "--guidance", repr(recipe.guidance)]
    args += ["--size", size]
    if len(models) > 1:
        args += ["--model", preset.name]
    if recipe.negative:
        args.append(f"--negative={recipe.negative}")
    args += [f"--suffix={suffix}" for suffix in suffixes]
    args += ["--config", "config.toml", "--out", "out/"]
    try:  # the command line's own parser and checks must give back this very recipe
        with contextlib.redirect_stderr(io.StringIO()):
            request = request_from_args(settings, build_parser().parse_args(args), models)
    except (SystemExit, ValueError, CommandLineError):
        return None
    drawn = (request.tiles(), request.negative, request.steps, request.guidance, request.width, request.height)
    wanted = (recipe.tiles, recipe.negative, recipe.steps, recipe.guidance, recipe.width, recipe.height)
    if drawn != wanted or request.model != recipe.model:
        return None
    line = "seedgrid " + shlex.join(args)
    return line if len(line) <= _COMMAND and "`" not in line else None


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(RecipesCog(bot))
