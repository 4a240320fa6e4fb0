"""How the bench context plugs into the platform (see hearth.platform.contexts)."""

from __future__ import annotations

from typing import Any

from hearth.platform.contexts import Context


async def start(platform: Any) -> None:
    return None


CONTEXT = Context(name="bench", start=start)
