"""Planner routes under /api/planner: knowledge base, intent, plan, predict, manifests, deploy."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from hearth.auth.deps import require_admin, require_principal
from hearth.auth.principal import Principal
from hearth.gateway.service import Caller
from hearth.planner import service as planner
from hearth.planner.ports import SERVICE
from hearth.planner.schemas import (
    BenchmarkRowIn,
    BenchmarkRowOut,
    DeployRequest,
    DeployResponse,
    GpuOut,
    IntentRequest,
    IntentResponse,
    ManifestRequest,
    ManifestResponse,
    ModelOut,
    PlanRequest,
    PlanResponse,
    PredictRequest,
    PredictResponse,
)
from hearth.platform.deps import port

router = APIRouter(prefix="/api/planner", tags=["planner"])


def _svc(request: Request) -> planner.PlannerService:
    return port(SERVICE)(request)


@router.get("/models", response_model=list[ModelOut])
async def list_models(request: Request, _: Principal = Depends(require_principal)) -> list[ModelOut]:
    models = await planner.list_models(db=_svc(request).db)
    return [
        ModelOut(**{**asdict(m), "quantizations": list(m.quantizations), "tasks": list(m.tasks)})
        for m in models
    ]


@router.get("/gpus", response_model=list[GpuOut])
async def list_gpus(request: Request, _: Principal = Depends(require_principal)) -> list[GpuOut]:
    return [GpuOut(**asdict(g)) for g in await planner.list_gpus(db=_svc(request).db)]


@router.get("/benchmarks", response_model=list[BenchmarkRowOut])
async def list_benchmarks(
    request: Request,
    model_id: str | None = None,
    gpu: str | None = None,
    limit: int = 500,
    _: Principal = Depends(require_principal),
) -> list[BenchmarkRowOut]:
    return await planner.list_benchmark_rows(
        db=_svc(request).db, model_id=model_id, gpu=gpu, limit=max(1, min(limit, 10_000))
    )


@router.post("/benchmarks", status_code=201)
async def add_benchmarks(
    rows: list[BenchmarkRowIn], request: Request, _: Principal = Depends(require_admin)
) -> dict[str, int]:
    svc = _svc(request)
    return {"added": await planner.add_benchmark_rows(db=svc.db, rows=rows, bus=svc.bus)}


@router.get("/calibration")
async def calibration(request: Request, _: Principal = Depends(require_principal)) -> dict[str, Any]:
    return await _svc(request).calibration()


@router.post("/intent", response_model=IntentResponse)
async def intent(
    body: IntentRequest, request: Request, principal: Principal = Depends(require_principal)
) -> IntentResponse:
    caller = Caller(
        user_id=principal.user_id,
        priority=principal.priority,
        request_id=getattr(request.state, "request_id", ""),
    )
    return await _svc(request).extract(text=body.text, caller=caller, use_model=body.use_model)


@router.post("/plan", response_model=PlanResponse)
async def plan(
    body: PlanRequest, request: Request, _: Principal = Depends(require_principal)
) -> PlanResponse:
    return await _svc(request).plan(request=body)


@router.post("/predict", response_model=PredictResponse)
async def predict(
    body: PredictRequest, request: Request, _: Principal = Depends(require_principal)
) -> PredictResponse:
    return await _svc(request).predict(request=body)


@router.post("/manifests", response_model=ManifestResponse)
async def manifests(
    body: ManifestRequest, request: Request, _: Principal = Depends(require_principal)
) -> ManifestResponse:
    return await _svc(request).manifests(request=body)


@router.post("/deploy", response_model=DeployResponse)
async def deploy(
    body: DeployRequest, request: Request, _: Principal = Depends(require_admin)
) -> DeployResponse:
    return await _svc(request).deploy(request=body)
