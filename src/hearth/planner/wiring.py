"""How the planner context plugs into the platform (see hearth.platform.core): provides `BenchmarkSink`."""

from __future__ import annotations

from hearth.planner import ports
from hearth.planner.api import router
from hearth.planner.service import PlannerService, seed_knowledge_base
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> PlannerService:
    await seed_knowledge_base(db=platform.db)
    planner = PlannerService(
        db=platform.db, gateway=platform.gateway, bus=platform.bus, settings=platform.settings
    )
    platform.ports.provide(ports.BENCHMARKS, planner)
    platform.ports.provide(ports.SERVICE, planner)
    return planner


CONTEXT = Context(name="planner", start=start, routers=(router,))
