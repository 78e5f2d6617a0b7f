"""The translations of :mod:`bot.texts`, one module per language, found by name.

A language is one file here named after its Discord locale with ``-`` written ``_`` (``ko.py``,
``pt_BR.py``, ``zh_TW.py``), holding ``STRINGS``: a mapping from the English catalogue's keys to
sentences with the same ``{placeholders}``. A key a language lacks is shown in English. A member's
locale is matched exactly first (``pt-BR``), then by its language (``es-419`` → ``es``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Final

EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


@cache
def available() -> Mapping[str, Mapping[str, str]]:
    """Every translation shipped, by Discord locale (``"ko"``, ``"pt-BR"``)."""
    found: dict[str, Mapping[str, str]] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        found[module.name.replace("_", "-")] = MappingProxyType(dict(loaded.STRINGS))
    return MappingProxyType(found)


def catalogue(locale: str) -> Mapping[str, str]:
    """The sentences for a Discord ``locale``: its own file, else its language's, else none."""
    shipped = available()
    if locale in shipped:
        return shipped[locale]
    return shipped.get(locale.split("-", maxsplit=1)[0], EMPTY)
