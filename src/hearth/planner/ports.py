"""What the planner context offers: its knowledge base takes measured benchmark rows (from bench runs and
imported reports), always with a `BenchmarkRowsAdded` event. `SERVICE` is for the planner's own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hearth.planner.schemas import BenchmarkRowIn, BenchmarkRowOut, PredictRequest, PredictResponse
from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.planner.service import PlannerService


class BenchmarkSink(Protocol):
    async def add_benchmark_rows(self, rows: list[BenchmarkRowIn]) -> int:
        """Store rows (all or none) and publish `BenchmarkRowsAdded`; returns how many."""
        ...


class Predictions(Protocol):
    async def predict(self, *, request: PredictRequest) -> PredictResponse:
        """Latency and throughput of one configuration at one traffic point (422/404 when it cannot)."""
        ...

    async def benchmark_rows(
        self, *, model_id: str | None = None, gpu: str | None = None, limit: int = 20
    ) -> list[BenchmarkRowOut]:
        """The knowledge base's benchmark rows, newest first (what bench runs and imports stored)."""
        ...


BENCHMARKS: Port[BenchmarkSink] = Port("planner.benchmarks")
PREDICTIONS: Port[Predictions] = Port("planner.predictions")  # the agents' planner and bench tools
SERVICE: Port[PlannerService] = Port("planner.service")
