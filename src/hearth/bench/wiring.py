"""How the bench context plugs into the platform (see hearth.platform.core).

The bench keeps no tables of its own: what it measures goes into the planner's knowledge base as benchmark
rows, through the planner's `BenchmarkSink` port. Its route imports reports."""

from __future__ import annotations

from hearth.bench import ports
from hearth.bench.api import router
from hearth.bench.service import BenchService
from hearth.planner.ports import BENCHMARKS
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> BenchService:
    bench = BenchService(sink=platform.ports.require(BENCHMARKS))
    platform.ports.provide(ports.SERVICE, bench)
    return bench


CONTEXT = Context(name="bench", start=start, routers=(router,))
