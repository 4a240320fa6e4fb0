"""Planner events."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _PlannerEvent(Event):
    context: ClassVar[str] = "planner"


class PlanDeployed(_PlannerEvent):
    """A plan option was applied to a cluster (and, when Ready, routed through a gateway alias)."""

    name: str
    namespace: str
    model_id: str
    gpu: str
    replicas: int
    url: str | None
    ready: bool
    alias: str | None


class BenchmarkRowsAdded(_PlannerEvent):
    """Rows joined the knowledge base; the predictor recalibrates on its next use."""

    count: int
    source: str
