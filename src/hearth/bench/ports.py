"""The bench context offers no port to other contexts; `SERVICE` and `RUNS` are for its own routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.platform.ports import Port

if TYPE_CHECKING:
    from hearth.bench.live import LiveRuns
    from hearth.bench.service import BenchService

SERVICE: Port[BenchService] = Port("bench.service")
RUNS: Port[LiveRuns] = Port("bench.runs")
