"""What the planner context offers: its knowledge base takes measured benchmark rows (from bench runs and
imported reports), always with a `BenchmarkRowsAdded` event. `SERVICE` is for the planner's own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hearth.planner.schemas import BenchmarkRowIn
from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.planner.service import PlannerService


class BenchmarkSink(Protocol):
    async def add_benchmark_rows(self, rows: list[BenchmarkRowIn]) -> int:
        """Store rows (all or none) and publish `BenchmarkRowsAdded`; returns how many."""
        ...


BENCHMARKS: Port[BenchmarkSink] = Port("planner.benchmarks")
SERVICE: Port[PlannerService] = Port("planner.service")
