"""How the bench context plugs into the platform (see hearth.platform.contexts).

The bench keeps no tables of its own: what it measures goes into the planner's knowledge base as benchmark
rows. Its service only needs the database; its route imports reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.bench.api import router
from hearth.bench.service import BenchService
from hearth.platform.contexts import Context

if TYPE_CHECKING:
    from hearth.app import Platform


async def start(platform: Platform) -> BenchService:
    return BenchService(db=platform.db)


CONTEXT = Context(name="bench", start=start, routers=(router,))
