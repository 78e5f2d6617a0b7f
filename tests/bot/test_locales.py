"""Every sentence of every language: complete, the same placeholders as English, within Discord's limits.

A description or choice name is any key the cogs pass to ``described(...)``; a command or option name is a
``name.*`` key; buttons, the refine form's title and label have their own limits. Each sentence is rendered
with realistic values (a 10-digit seed, 5-digit numbers) before it is measured.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path

import pytest

from bot import locales
from bot.texts import ENGLISH, Text, template, text

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = sorted(locales.available())
NAME = re.compile(r"^[-_'\w]{1,32}$")  # Discord's rule for chat-command and option names (\w: any script)
CONTEXT_MENUS = {"name.show_recipe"}  # a context menu's name is a display name: spaces and capitals allowed


def fields(sentence: str) -> set[tuple[str, str, str | None]]:
    return {
        (name, spec or "", conversion)
        for _, name, spec, conversion in string.Formatter().parse(sentence)
        if name is not None
    }


def sample(sentence: str) -> dict[str, object]:
    """Realistic values: numbers where a format spec asks for one, else a 10-character value (a seed's width)."""
    return {name: (12345.5 if spec else "4294967295") for name, spec, _ in fields(sentence)}


def described_keys() -> set[str]:
    """The keys the cogs send to Discord as descriptions or choice names (``described("…")``)."""
    found: set[str] = set()
    for path in (ROOT / "cogs").rglob("*.py"):
        found.update(re.findall(r'described\(\s*f?"([a-z_.{}]+)"', path.read_text(encoding="utf-8")))
    expanded = {key for key in found if "{" not in key}
    for pattern in found - expanded:  # described(f"choice.{name}") stands for every choice.* key
        prefix = pattern.split("{")[0]
        expanded.update(key for key in ENGLISH if key.startswith(prefix))
    return expanded


def limit(key: str) -> int:
    if key.startswith("name."):
        return 32
    if key.startswith("button."):
        return 80
    if key in ("refine.title", "refine.label"):
        return 45
    if key in DESCRIBED or key.startswith("choice.") or key == "refine.placeholder":
        return 100
    return 2000  # a message's content


DESCRIBED = described_keys()


def test_the_cogs_describe_with_catalogue_keys() -> None:
    assert {"imagine.description", "imagine.prompt", "admin.group", "choice.blur"} <= DESCRIBED
    assert set(ENGLISH) >= DESCRIBED


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_every_sentence_keeps_discords_limits(language: str) -> None:
    catalogue: Mapping[str, str] = ENGLISH if language == "en" else locales.available()[language]
    too_long = {}
    for key, sentence in catalogue.items():
        shown = sentence.format(**sample(sentence))
        if len(shown) > limit(key):
            too_long[key] = (len(shown), limit(key))
        if key.startswith("name.") and key not in CONTEXT_MENUS:
            assert NAME.match(sentence) and sentence == sentence.lower(), (language, key, sentence)
    assert not too_long


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_language_is_complete_with_the_same_placeholders(language: str) -> None:
    translated = locales.available()[language]
    missing, unknown = sorted(set(ENGLISH) - set(translated)), sorted(set(translated) - set(ENGLISH))
    assert not missing and not unknown, f"missing: {missing}; unknown: {unknown}"
    for key, sentence in translated.items():
        assert fields(sentence) == fields(ENGLISH[key]), key
        assert sentence.strip(), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_names_stay_distinct_among_siblings(language: str) -> None:
    """Options of one command and subcommands of one group may not share a translated name (Discord refuses)."""
    siblings = [
        ("prompt", "negative", "seed", "steps", "guidance", "size", "model"),
        ("status", "queue", "pause", "resume", "cancel"),
        ("show", "default", "reset", "nsfw", "quota"),
        ("show", "set", "reset"),
        ("name", "value"),
        ("channel", "policy"),
        ("role", "images"),
    ]
    for group in siblings:
        names = [template(f"name.{name}", language) for name in group]
        assert len(set(names)) == len(names), (group, names)


def test_a_locale_finds_its_language_and_falls_back_to_english() -> None:
    assert locales.catalogue("ko") is locales.available()["ko"]
    assert locales.catalogue("en-US") == {} and locales.catalogue("xx-YY") == {}
    assert text("job.queued", locale="fr") == text("job.queued") == ENGLISH["job.queued"]
    assert text("job.queued", locale="ko") != ENGLISH["job.queued"]


def test_a_text_parameter_is_rendered_in_the_same_language() -> None:
    reason = Text("failed.timeout", seconds=30)
    assert text("job.failed", locale="ko", reason=reason) == "❌ " + reason.render("ko")
    assert reason.render("ko") != str(reason)


def test_a_text_survives_the_store_and_the_wire() -> None:
    nested = Text("error.prefix", message=Text("refused.rate", seconds=3))
    assert Text.from_json(nested.to_json()) == nested
    assert Text.from_json("an older version's sentence").render("ko") == "an older version's sentence"
    assert Text.from_json('{"key": "no.such.key", "params": {}}').render(None) == '{"key": "no.such.key", "params": {}}'


@pytest.mark.parametrize("language", LANGUAGES)
def test_commands_named_in_sentences_are_named_as_the_member_sees_them(language: str) -> None:
    """A member whose Discord is in this language sees ``/그리기``, not ``/imagine``: a sentence naming a
    command names it in the language's own words."""
    names = {template(key, language) for key in ENGLISH if key.startswith("name.")}
    for key, sentence in locales.available()[language].items():
        for command in re.findall(r"(?:^|[\s`(])/([^\s`).,/]+)", sentence):
            assert command in names, (key, command)
