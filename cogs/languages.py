"""The bot in the member's language: which locale a message is for, and the slash commands' translations.

Sentences live in :mod:`bot.texts` (English) and :mod:`bot.locales` (one file per language). Here:

- :func:`locale_of` — an answer to an interaction is in the member's language (``interaction.locale``);
- :func:`job_locale` — a job's message is in the language of the member who asked for it, stored with the
  job; for a job without one (from before, or the CLI's), the server's language (its preferred locale);
- :class:`CatalogueTranslator` — discord.py's :class:`~discord.app_commands.Translator`: every command,
  option and choice name and every description is sent to Discord with ``name_localizations`` and
  ``description_localizations`` for each shipped language when the commands are synced;
- :func:`described` — a description (or a choice name) that carries its catalogue key to the translator.

Names are translated by convention: a command, group or option named ``imagine`` is the key ``name.imagine``
(a context menu "Show recipe" is ``name.show_recipe``), a choice whose value is ``blur`` is ``choice.blur``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import locales
from bot.jobs import Job
from bot.texts import ENGLISH, text

log = logging.getLogger(__name__)

_NAMES = frozenset({Where.command_name, Where.group_name, Where.parameter_name})


def locale_of(interaction: discord.Interaction) -> str:
    """The member's language for an answer to ``interaction`` (Discord sends it with every interaction)."""
    return interaction.locale.value


def job_locale(client: discord.Client, job: Job) -> str | None:
    """The language of a job's message: its member's, else its server's, else None (English)."""
    if job.request.locale:
        return job.request.locale
    guild = client.get_guild(job.request.guild_id) if job.request.guild_id is not None else None
    return guild.preferred_locale.value if guild is not None else None


def described(key: str, /, **params: Any) -> app_commands.locale_str:
    """The English sentence ``key`` for a command's description (or a choice's name), keyed for translation."""
    return app_commands.locale_str(text(key, **params), key=key, params=params)


def name_key(message: str) -> str:
    """The catalogue key of a command, group, option or context-menu name."""
    return "name." + message.lower().replace(" ", "_")


class CatalogueTranslator(app_commands.Translator):
    """Translates the command tree from :mod:`bot.locales` (English is what the code says)."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        catalogue = locales.catalogue(locale.value)
        if not catalogue:
            return None
        key = _key_of(string, context)
        if key is None or key not in catalogue:
            return None
        params: Mapping[str, Any] = string.extras.get("params") or {}
        return text(key, locale=locale.value, **params)


def _key_of(string: app_commands.locale_str, context: app_commands.TranslationContextTypes) -> str | None:
    key = string.extras.get("key")
    if isinstance(key, str):
        return key
    if context.location in _NAMES:
        return name_key(string.message)
    if context.location is Where.choice_name and isinstance(context.data, app_commands.Choice):
        candidate = f"choice.{context.data.value}"
        return candidate if candidate in ENGLISH else None
    return None
