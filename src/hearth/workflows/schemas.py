"""Request and response shapes of /api/workflows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class PipelineOut(BaseModel):
    name: str
    version: str
    description: str
    params: dict[str, dict[str, Any]]  # name → {type, default?, help}
    metrics: dict[str, str]  # metric → "max" | "min" (which value wins a comparison)
    admin_only: bool = False  # only admins may start it
    steps: list[dict[str, Any]]  # name, after, outputs, artifacts, retries, timeout, inline, target
    created_at: UtcTimestamp


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(min_length=1, max_length=128)
    version: str | None = Field(None, max_length=64, description="default: the version this server declares")
    params: dict[str, Any] = {}
    experiment: str | None = Field(
        None, min_length=1, max_length=128, pattern=NAME, description="experiment name (created if new)"
    )
    executor: Literal["local", "argo"] = "local"


class RunOut(ORMModel):
    id: str
    pipeline: str
    version: str
    status: RunStatus
    executor: str
    params: dict[str, Any]
    metrics: dict[str, float]
    error: str | None
    experiment_id: str | None
    created_at: UtcTimestamp
    started_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None


class StepOut(ORMModel):
    name: str
    status: str
    after: list[str]
    attempt: int
    retries: int
    timeout: float | None
    outputs: dict[str, Any]
    error: str | None
    started_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None


class ArtifactOut(ORMModel):
    id: str
    step: str
    name: str
    type: str
    uri: str
    size: int
    sha256: str
    created_at: UtcTimestamp


class RunDetail(RunOut):
    steps: list[StepOut]
    artifacts: list[ArtifactOut]


class RunList(BaseModel):
    data: list[RunOut]


class LogLine(ORMModel):
    seq: int
    step: str
    attempt: int
    at: UtcTimestamp
    line: str


class LogPage(BaseModel):
    data: list[LogLine]
    next_after: int  # pass as `after` to get the lines that follow
    run_status: RunStatus


class ExperimentOut(BaseModel):
    id: str
    name: str
    description: str
    runs: int
    created_at: UtcTimestamp


class ExperimentList(BaseModel):
    data: list[ExperimentOut]


class ComparedRun(BaseModel):
    id: str
    pipeline: str
    status: RunStatus
    params: dict[str, Any]
    metrics: dict[str, float]
    created_at: UtcTimestamp


class ComparedMetric(BaseModel):
    name: str
    goal: Literal["max", "min"]
    values: dict[str, float | None]  # run id → value
    best: str | None  # the run id that won (None: a tie or no values)


class Comparison(BaseModel):
    runs: list[ComparedRun]
    params_differing: list[str]  # parameter names whose values differ between the runs
    metrics: list[ComparedMetric]


class ArgoWorkflow(BaseModel):
    run_id: str
    workflow: dict[str, Any]  # the argoproj.io/v1alpha1 Workflow object
    submitted: bool = False
    name: str | None = None  # as created in the cluster
