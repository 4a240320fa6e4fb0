"""Planner routes under /api/planner: knowledge base, intent, plan, predict, manifests, deploy."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from hearth.auth.deps import AdminUser, CurrentUser
from hearth.gateway.service import Caller
from hearth.planner import knowledge
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
from hearth.planner.service import PlannerService
from hearth.platform.deps import port
from hearth.platform.kit.openapi import MODEL_ERRORS, errors

router = APIRouter(prefix="/api/planner", tags=["planner"])

Planner = Annotated[PlannerService, Depends(port(SERVICE))]


@router.get("/models", response_model=list[ModelOut])
async def list_models(planner: Planner, _: CurrentUser) -> list[ModelOut]:
    return [ModelOut.model_validate(m) for m in await knowledge.list_models(db=planner.db)]


@router.get("/gpus", response_model=list[GpuOut])
async def list_gpus(planner: Planner, _: CurrentUser) -> list[GpuOut]:
    return [GpuOut.model_validate(g) for g in await knowledge.list_gpus(db=planner.db)]


@router.get("/benchmarks", response_model=list[BenchmarkRowOut])
async def list_benchmarks(
    planner: Planner, _: CurrentUser, model_id: str | None = None, gpu: str | None = None, limit: int = 500
) -> list[BenchmarkRowOut]:
    return await knowledge.list_benchmark_rows(
        db=planner.db, model_id=model_id, gpu=gpu, limit=max(1, min(limit, 10_000))
    )


@router.post("/benchmarks", status_code=201, responses=errors(404))
async def add_benchmarks(rows: list[BenchmarkRowIn], planner: Planner, _: AdminUser) -> dict[str, int]:
    return {"added": await planner.add_benchmark_rows(rows)}


@router.get("/calibration")
async def calibration(planner: Planner, _: CurrentUser) -> dict[str, Any]:
    return await planner.calibration()


@router.post("/intent", response_model=IntentResponse, responses=errors(*MODEL_ERRORS))
async def intent(
    body: IntentRequest, request: Request, planner: Planner, principal: CurrentUser
) -> IntentResponse:
    caller = Caller(
        user_id=principal.user_id,
        priority=principal.priority,
        request_id=getattr(request.state, "request_id", ""),
    )
    return await planner.extract(text=body.text, caller=caller, use_model=body.use_model)


@router.post("/plan", response_model=PlanResponse, responses=errors(404))
async def plan(body: PlanRequest, planner: Planner, _: CurrentUser) -> PlanResponse:
    return await planner.plan(request=body)


@router.post("/predict", response_model=PredictResponse, responses=errors(404))
async def predict(body: PredictRequest, planner: Planner, _: CurrentUser) -> PredictResponse:
    return await planner.predict(request=body)


@router.post("/manifests", response_model=ManifestResponse, responses=errors(404))
async def manifests(body: ManifestRequest, planner: Planner, _: CurrentUser) -> ManifestResponse:
    return await planner.manifests(request=body)


@router.post("/deploy", response_model=DeployResponse, responses=errors(404, 409, 502))
async def deploy(body: DeployRequest, planner: Planner, _: AdminUser) -> DeployResponse:
    return await planner.deploy(request=body)
