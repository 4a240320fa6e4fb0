"""Bench routes under /api: import a benchmark report (GuideLLM's or a Hearth run's) as planner rows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from hearth.auth.deps import AdminUser
from hearth.bench.guidellm import labels
from hearth.bench.ports import SERVICE
from hearth.bench.schemas import ImportRequest, ImportResult
from hearth.bench.service import BenchService, is_hearth_report
from hearth.platform.deps import port

router = APIRouter(prefix="/api/bench", tags=["bench"])

Bench = Annotated[BenchService, Depends(port(SERVICE))]


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
