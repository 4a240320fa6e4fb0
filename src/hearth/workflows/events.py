"""Workflow events (seed 000's workflow stream): a run created, each step started and finished, each
artifact produced, the run finished. Each is written to the outbox in the transaction of the change."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _WorkflowEvent(Event):
    context: ClassVar[str] = "workflows"


class PipelineRunCreated(_WorkflowEvent):
    run_id: str
    owner_id: str
    pipeline: str
    version: str
    executor: str = "local"
    experiment_id: str | None = None


class StepStarted(_WorkflowEvent):
    run_id: str
    step: str
    attempt: int
    worker: str


class StepCompleted(_WorkflowEvent):
    """A step attempt ended: succeeded, failed (`retrying` when another attempt follows) or cancelled."""

    run_id: str
    step: str
    attempt: int
    status: str
    retrying: bool = False
    error: str | None = None


class ArtifactProduced(_WorkflowEvent):
    run_id: str
    step: str
    name: str
    type: str
    uri: str


class PipelineRunCompleted(_WorkflowEvent):
    run_id: str
    owner_id: str
    pipeline: str
    status: str  # succeeded | failed | cancelled
    error: str | None = None
