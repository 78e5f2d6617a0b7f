"""The /imagine feature: a prompt becomes a seeded 2×2 grid; its buttons refine, re-roll or cancel.

- :mod:`._cog` — the command and button handlers, top to bottom: check, validate, store, answer, start.
- :mod:`._command` — the /imagine command object (its bounds and choices come from the config).
- :mod:`._access` — who may use it where, how fast, with which words.
- :mod:`._views` — the buttons (DynamicItems that outlive restarts) and the refine form.
- :mod:`._delivery` — a job's one message, from "Queued" to the posted grid, after restarts too.
- :mod:`._status` — progress edits, at most one every few seconds.
- :mod:`._messages` — what the status lines and the grid's embed say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cogs.imagine._cog import ImagineCog

if TYPE_CHECKING:
    from cogs.client import SeedgridBot

__all__ = ["ImagineCog", "setup"]


async def setup(bot: SeedgridBot) -> None:
    await bot.add_cog(ImagineCog(bot))
