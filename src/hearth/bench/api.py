"""Bench routes under /api/bench (admins only): import a benchmark report (GuideLLM's or a Hearth run's) as
planner rows, and the web UI's short runs (start one and follow it as server-sent events; past runs)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from hearth.auth.deps import AdminUser
from hearth.bench.guidellm import labels
from hearth.bench.live import LiveRuns
from hearth.bench.ports import RUNS, SERVICE
from hearth.bench.schemas import BenchRunOut, ImportRequest, ImportResult, LiveRunRequest
from hearth.bench.service import BenchService, is_hearth_report
from hearth.gateway.service import metered_caller
from hearth.platform.deps import port
from hearth.platform.kit.openapi import MODEL_ERRORS, errors, event_stream
from hearth.platform.kit.sse import SSEResponse, named_frames

router = APIRouter(prefix="/api/bench", tags=["bench"])

Bench = Annotated[BenchService, Depends(port(SERVICE))]
Runs = Annotated[LiveRuns, Depends(port(RUNS))]


@router.post("/import", status_code=201, response_model=ImportResult)
async def import_report(body: ImportRequest, bench: Bench, _: AdminUser) -> ImportResult:
    """Store a report's benchmarks in the planner's knowledge base (admins: the rows are shared truth)."""
    row_labels = labels(
        model_id=body.model_id,
        quantization=body.quantization,
        gpu=body.gpu,
        gpu_count=body.gpu_count,
        hardware_label=body.hardware_label,
    )
    rows = await bench.import_report(report=body.report, row_labels=row_labels, source=body.source)
    return ImportResult(
        saved=len(rows),
        format="hearth" if is_hearth_report(body.report) else "guidellm",
        rows=[row.model_dump(mode="json") for row in rows],
    )


@router.post("/runs", responses={**errors(*MODEL_ERRORS), **event_stream(200)})
async def start_run(body: LiveRunRequest, request: Request, runs: Runs, admin: AdminUser) -> Response:
    """Run a short bench (admins: it loads shared models, and a URL is fetched from the server) and stream
    its events: `started`, `progress`, `level` (each concurrency level's figures), then `done` with the
    stored run or `error` (an unreachable endpoint, an unknown alias). Hanging up cancels the run."""
    # The caller's rate limit is checked once here; the run's tokens are charged to the admin's key.
    caller = await metered_caller(request.app, admin)
    events = runs.run(request=body, caller=caller, user_id=admin.user_id)
    return SSEResponse(named_frames(events), on_close=events.aclose)  # type: ignore[attr-defined]


@router.get("/runs", response_model=list[BenchRunOut])
async def list_runs(
    runs: Runs, _: AdminUser, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[BenchRunOut]:
    """The latest runs started from the web UI, newest first."""
    return await runs.list(limit=limit)


@router.get("/runs/{run_id}", response_model=BenchRunOut, responses=errors(404))
async def get_run(run_id: str, runs: Runs, _: AdminUser) -> BenchRunOut:
    return await runs.get(run_id=run_id)
