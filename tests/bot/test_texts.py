"""The message catalogue (``bot/texts.py``): every key the code names exists, gets exactly its parameters,
and is used somewhere; ``Text`` renders as ``text`` does.

The first three checks read the source of ``bot/`` and ``cogs/`` (with :mod:`ast`, nothing is run): every
call ``Text("key", ...)``, ``text("key", ...)`` and ``UserInputError("key", ...)`` whose key is a string
literal (or a choice between literals) is a use of that key. A message that the code renders with a
parameter it does not have fails in front of a member at run time; these checks fail here instead.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.texts import ENGLISH, Text, text
from cogs.languages import name_key

ROOT = Path(__file__).parents[2]
SOURCES = ("bot", "cogs")
KEYED_CALLS = {"Text", "text", "UserInputError", "described"}  # callables whose first argument is a catalogue key
NOT_PARAMS = {"locale"}  # keyword arguments of text() that are not the message's parameters


@dataclass(frozen=True)
class Use:
    """One call naming a key: where it is, and the keyword parameters it passes (None: not all literal)."""

    key: str
    where: str
    params: frozenset[str] | None

    def __str__(self) -> str:
        return f"{self.where}: {self.key!r}"


def _keys(node: ast.expr) -> list[str] | None:
    """The key(s) an argument can be: a string literal, or a conditional choosing between such."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _keys(node.body), _keys(node.orelse)
        if body is not None and orelse is not None:
            return body + orelse
    return None


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "texts":
        return func.attr  # texts.text("key") through the module
    return None


def _uses_in(path: Path) -> Iterator[Use]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _called_name(node) in KEYED_CALLS and node.args):
            continue
        keys = _keys(node.args[0])
        if keys is None:  # a key passed on (Text(key, **params) inside UserInputError): not a use
            continue
        literal = all(kw.arg is not None for kw in node.keywords)  # no **params
        params = (
            frozenset(kw.arg for kw in node.keywords if kw.arg is not None and kw.arg not in NOT_PARAMS)
            if literal
            else None
        )
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        for key in keys:
            yield Use(key, where, params)


def uses() -> list[Use]:
    found = [use for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py")) for use in _uses_in(path)]
    assert len(found) > 50, "the scan found almost no uses: has the way the code names texts changed?"
    return found


USES = uses()


def fields(message: str) -> set[str]:
    """The ``str.format`` fields of ``message`` (``{max:g}`` → ``max``; fields nested in format specs too)."""
    names: set[str] = set()
    for _, name, spec, _ in string.Formatter().parse(message):
        if name is not None:
            root = re.split(r"[.\[]", name, maxsplit=1)[0]
            assert root and not root.isdigit(), f"positional field in {message!r}: give it a name"
            names.add(root)
        if spec:
            names |= fields(spec)
    return names


def test_every_key_the_code_names_is_in_the_catalogue() -> None:
    missing = [str(use) for use in USES if use.key not in ENGLISH]
    assert missing == [], "keys used in bot/ or cogs/ but missing from bot.texts.ENGLISH"


def test_every_call_passes_exactly_the_parameters_of_its_message() -> None:
    wrong = [
        f"{use}: passes {sorted(use.params)}, the message has {sorted(fields(ENGLISH[use.key]))}"
        for use in USES
        if use.key in ENGLISH and use.params is not None and use.params != fields(ENGLISH[use.key])
    ]
    assert wrong == [], "calls whose keyword parameters differ from their message's format fields"


def test_every_message_of_the_catalogue_is_used() -> None:
    """Names of commands and options are used by convention (cogs.languages.name_key), and choice names
    through ``described(f"choice.{value}")``: each must name itself back."""
    conventional = {key for key in ENGLISH if key.startswith(("name.", "choice."))}
    assert all(name_key(ENGLISH[key]) == key for key in conventional if key.startswith("name."))
    used = {use.key for use in USES} | conventional
    unused = sorted(set(ENGLISH) - used)
    assert unused == [], "dead messages: keys of bot.texts.ENGLISH that no call in bot/ or cogs/ names"


@pytest.mark.parametrize("key", sorted(ENGLISH))
def test_every_message_is_a_well_formed_template(key: str) -> None:
    params = dict.fromkeys(fields(ENGLISH[key]), 1)  # a number fits every spec in use ({:g}, {:.0f}, {!r})
    assert all(name.isidentifier() for name in params)  # a keyword the code can pass
    assert text(key, **params)  # renders: no stray brace, no spec a number cannot take


def test_text_object_renders_like_text() -> None:
    assert str(Text("refused.queue_full", limit=50)) == text("refused.queue_full", limit=50)
    assert str(Text("refused.queue_full", limit=50)) == "The queue is full (50 jobs); try again in a few minutes."
    assert str(Text("job.queued")) == text("job.queued") == ENGLISH["job.queued"]


def test_a_text_parameter_is_rendered_in_place() -> None:
    what = Text("input.what.negative")
    assert text("input.empty", what=what) == "The negative prompt is empty: describe what you want to see."
    assert str(Text("input.empty", what=what)) == text("input.empty", what=what)
    nested = Text("error.prefix", message=Text("input.too_long", what=Text("input.what.prompt"), length=5, limit=4))
    assert str(nested) == "⚠️ The prompt is 5 characters long; the limit is 4."


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(KeyError, match=r"no\.such\.key"):
        Text("no.such.key")
    with pytest.raises(KeyError, match=r"no\.such\.key"):
        text("no.such.key")


def test_a_missing_parameter_is_an_error_not_a_half_message() -> None:
    with pytest.raises(KeyError, match="limit"):
        text("refused.queue_full")
