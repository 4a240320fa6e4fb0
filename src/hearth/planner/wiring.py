"""How the planner context plugs into the platform (see hearth.platform.core): requires the gateway's
`AliasRegistry` (deploys route an alias to what they deployed), provides `BenchmarkSink`."""

from __future__ import annotations

from hearth.gateway.ports import ALIASES
from hearth.planner import ports
from hearth.planner.api import router
from hearth.planner.knowledge import seed_knowledge_base
from hearth.planner.service import PlannerService
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> PlannerService:
    await seed_knowledge_base(db=platform.db)
    planner = PlannerService(
        db=platform.db,
        bus=platform.bus,
        settings=platform.settings,
        gateway=platform.gateway,
        aliases=platform.ports.require(ALIASES),
    )
    platform.ports.provide(ports.BENCHMARKS, planner)
    platform.ports.provide(ports.PREDICTIONS, planner)
    platform.ports.provide(ports.SERVICE, planner)
    return planner


CONTEXT = Context(name="planner", start=start, routers=(router,))
