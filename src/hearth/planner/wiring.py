"""How the planner context plugs into the platform (see hearth.platform.contexts)."""

from __future__ import annotations

from typing import Any

from hearth.planner.api import router
from hearth.planner.service import PlannerService, seed_knowledge_base
from hearth.platform.contexts import Context


async def start(platform: Any) -> PlannerService:
    await seed_knowledge_base(db=platform.db)
    return PlannerService(
        db=platform.db, gateway=platform.gateway, bus=platform.bus, settings=platform.settings
    )


CONTEXT = Context(name="planner", start=start, routers=(router,))
