"""How the bench context plugs into the platform (see hearth.platform.core).

What `hearth bench` measures goes into the planner's knowledge base as benchmark rows, through the planner's
`BenchmarkSink` port; its routes import reports, and run the web UI's short benches (kept in `bench_runs`)."""

from __future__ import annotations

from hearth.bench import ports
from hearth.bench.api import router
from hearth.bench.live import LiveRuns
from hearth.bench.personal_data import BenchPersonalData
from hearth.bench.service import BenchService
from hearth.planner.ports import BENCHMARKS
from hearth.platform.core import Context, Platform


async def start(platform: Platform) -> BenchService:
    bench = BenchService(sink=platform.ports.require(BENCHMARKS))
    platform.ports.provide(ports.SERVICE, bench)
    platform.ports.provide(ports.RUNS, LiveRuns(platform.db, platform.gateway))
    platform.personal_data.register(BenchPersonalData(platform.db))
    return bench


CONTEXT = Context(name="bench", start=start, routers=(router,))
