"""Bench routes under /api: import a benchmark report (GuideLLM's or a Hearth run's) as planner rows."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from hearth.auth.deps import require_admin
from hearth.auth.principal import Principal
from hearth.bench import service
from hearth.bench.guidellm import labels
from hearth.bench.ports import SERVICE
from hearth.bench.schemas import ImportRequest, ImportResult
from hearth.platform.deps import port

router = APIRouter(prefix="/api/bench", tags=["bench"])


@router.post("/import", status_code=201, response_model=ImportResult)
async def import_report(
    body: ImportRequest, request: Request, principal: Principal = Depends(require_admin)
) -> ImportResult:
    """Store a report's benchmarks in the planner's knowledge base (admins: the rows are shared truth)."""
    bench: service.BenchService = port(SERVICE)(request)
    row_labels = labels(
        model_id=body.model_id,
        quantization=body.quantization,
        gpu=body.gpu,
        gpu_count=body.gpu_count,
        hardware_label=body.hardware_label,
    )
    rows = await service.import_report(
        db=bench.db, report=body.report, row_labels=row_labels, source=body.source
    )
    return ImportResult(
        saved=len(rows),
        format="hearth" if service.is_hearth_report(body.report) else "guidellm",
        rows=[row.model_dump(mode="json") for row in rows],
    )
