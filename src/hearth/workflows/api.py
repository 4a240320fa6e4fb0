"""Workflow routes under /api/workflows: pipelines, runs (create, list, get, cancel, logs, artifacts, the
Argo Workflow of a run) and experiments (list, compare). Thin; every run and experiment is the caller's."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import StreamingResponse

from hearth.auth.deps import CurrentUser
from hearth.platform.deps import port
from hearth.platform.errors import bad_request
from hearth.platform.kit.openapi import errors
from hearth.platform.kit.repository import MAX_SQL_INT
from hearth.workflows.argo import compile_workflow, validate
from hearth.workflows.ports import SERVICE
from hearth.workflows.schemas import (
    ArgoWorkflow,
    Comparison,
    ExperimentList,
    LogPage,
    PipelineOut,
    RunCreate,
    RunDetail,
    RunList,
    RunStatus,
)
from hearth.workflows.service import WorkflowService

router = APIRouter(prefix="/api/workflows", tags=["workflows"])
Workflows = Annotated[WorkflowService, Depends(port(SERVICE))]
MAX_COMPARED = 50


@router.get("/pipelines", response_model=list[PipelineOut])
async def list_pipelines(_: CurrentUser, wf: Workflows) -> list[PipelineOut]:
    """The pipelines this server runs, each at its current version, with parameters and steps."""
    return await wf.list_pipelines()


@router.get("/pipelines/{name}", response_model=PipelineOut, responses=errors(404))
async def get_pipeline(
    name: str, _: CurrentUser, wf: Workflows, version: Annotated[str | None, Query(max_length=64)] = None
) -> PipelineOut:
    """One pipeline (its current version, or `version`)."""
    return await wf.get_pipeline(name, version)


@router.post("/runs", status_code=201, response_model=RunDetail, responses=errors(403, 404, 502))
async def create_run(body: RunCreate, principal: CurrentUser, wf: Workflows) -> RunDetail:
    """Start a run of a pipeline: parameters are checked first (422 names the wrong one); the run is
    pending until the local executor (or Argo, with `executor: argo`) picks it up."""
    return await wf.create_run(user_id=principal.user_id, body=body, is_admin=principal.is_admin)


@router.get("/runs", response_model=RunList)
async def list_runs(
    principal: CurrentUser,
    wf: Workflows,
    status: RunStatus | None = None,
    pipeline: Annotated[str | None, Query(max_length=128)] = None,
    experiment_id: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> RunList:
    """The caller's runs, newest first."""
    runs = await wf.list_runs(
        user_id=principal.user_id,
        status=status,
        pipeline=pipeline,
        experiment_id=experiment_id,
        limit=limit,
        offset=offset,
    )
    return RunList(data=runs)


@router.get("/runs/{run_id}", response_model=RunDetail, responses=errors(404))
async def get_run(run_id: str, principal: CurrentUser, wf: Workflows) -> RunDetail:
    """A run with its steps (state, attempts, outputs, errors, times) and artifacts."""
    return await wf.get_run(user_id=principal.user_id, run_id=run_id)


@router.post("/runs/{run_id}/cancel", response_model=RunDetail, responses=errors(404, 409))
async def cancel_run(run_id: str, principal: CurrentUser, wf: Workflows) -> RunDetail:
    """Cancel a pending or running run; its running steps stop within a heartbeat (409: already ended)."""
    return await wf.cancel_run(user_id=principal.user_id, run_id=run_id)


@router.get("/runs/{run_id}/logs", response_model=LogPage, responses=errors(404))
async def run_logs(
    run_id: str,
    principal: CurrentUser,
    wf: Workflows,
    step: Annotated[str | None, Query(max_length=128)] = None,
    after: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> LogPage:
    """Log lines of a run's steps after line `after` (poll with `next_after` to follow a run)."""
    return await wf.logs(user_id=principal.user_id, run_id=run_id, step=step, after=after, limit=limit)


@router.get(
    "/runs/{run_id}/artifacts/{artifact}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(404)},
)
async def download_artifact(
    run_id: str, artifact: str, principal: CurrentUser, wf: Workflows
) -> StreamingResponse:
    """An artifact's bytes, by id or `step.name` (404 when the run has none, or its object is gone)."""
    out, chunks = await wf.artifact(user_id=principal.user_id, run_id=run_id, artifact=artifact)

    async def body():  # type: ignore[no-untyped-def]
        iterator = iter(chunks)
        while True:
            block = await asyncio.to_thread(next, iterator, None)
            if block is None:
                return
            yield block

    filename = out.name.replace('"', "")
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{filename}"',
            "x-hearth-artifact-uri": out.uri,
            "x-hearth-sha256": out.sha256,
        },
    )


@router.get("/runs/{run_id}/argo", response_model=ArgoWorkflow, responses=errors(404))
async def run_argo_workflow(run_id: str, principal: CurrentUser, wf: Workflows) -> ArgoWorkflow:
    """The Argo Workflow this run compiles to (validated against Argo's CRD schema), for review or
    `kubectl create -f`."""
    run = await wf.get_run(user_id=principal.user_id, run_id=run_id)
    definition = (await wf.get_pipeline(run.pipeline, run.version)).model_dump()
    settings = wf.argo
    workflow = compile_workflow(
        run_id=run.id,
        definition=definition,
        image=settings.image if settings else "ghcr.io/hearth/hearth:latest",
        namespace=settings.namespace if settings else "default",
        secret=settings.secret if settings else "hearth-workflows",
        service_account=settings.service_account if settings else None,
    )
    await asyncio.to_thread(validate, workflow)
    return ArgoWorkflow(
        run_id=run.id, workflow=workflow, submitted=run.executor == "argo", name=workflow["metadata"]["name"]
    )


@router.get("/experiments", response_model=ExperimentList)
async def list_experiments(principal: CurrentUser, wf: Workflows) -> ExperimentList:
    """The caller's experiments, with how many runs each holds."""
    return ExperimentList(data=await wf.list_experiments(user_id=principal.user_id))


@router.get("/experiments/{experiment_id}/compare", response_model=Comparison, responses=errors(404))
async def compare_experiment(experiment_id: str, principal: CurrentUser, wf: Workflows) -> Comparison:
    """Every run of an experiment (by id or name) side by side: parameters, metrics, the winner of each."""
    run_ids = await wf.experiment_runs(user_id=principal.user_id, experiment=experiment_id)
    if not run_ids:
        raise bad_request(f"experiment {experiment_id!r} has no runs yet", param="experiment_id")
    return await wf.compare(user_id=principal.user_id, run_ids=run_ids[-MAX_COMPARED:])


@router.get("/compare", response_model=Comparison, responses=errors(404))
async def compare_runs(
    principal: CurrentUser,
    wf: Workflows,
    runs: Annotated[list[str], Query(min_length=1, max_length=MAX_COMPARED)],
) -> Comparison:
    """Any of the caller's runs side by side (`?runs=a&runs=b`)."""
    return await wf.compare(user_id=principal.user_id, run_ids=runs)
