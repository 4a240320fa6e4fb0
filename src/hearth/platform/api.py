"""Operational routes: liveness, readiness and Prometheus metrics (unauthenticated, for probes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from hearth.platform import metrics

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=dict[str, str])
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


class Readiness(BaseModel):
    status: str  # ready | degraded | not ready | starting | draining
    checks: dict[str, Any]  # database, models, …: "ok" or what is wrong


@router.get(
    "/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}}
)
async def readyz(request: Request) -> JSONResponse:
    platform = getattr(request.app.state, "platform", None)
    checks: dict[str, str] = {}
    if platform is None:
        return JSONResponse({"status": "starting", "checks": checks}, status_code=503)
    if platform.draining:
        # Shutting down (SIGTERM): out of the load balancer first, while requests in flight finish.
        return JSONResponse({"status": "draining", "checks": {"shutdown": "in progress"}}, status_code=503)
    try:
        async with platform.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports failures rather than raising them
        checks["database"] = f"error: {type(exc).__name__}"
    checks["models"] = "ok" if platform.gateway.ready else "loading"
    ready = all(v == "ok" for v in checks.values())
    # Aliases whose primary deployment is cooling down or failing: reported, but the server stays ready
    # while any alias can answer (taking it out of a load balancer would not bring a shared upstream back).
    troubled = platform.gateway.troubled_aliases()
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    if troubled:
        body["aliases"] = troubled
        if (
            ready
            and len(troubled) == len(platform.gateway.aliases)
            and all(t["status"] == "down" for t in troubled.values())
        ):
            ready = False
            body["status"] = "not ready"
        elif ready:
            body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(request: Request) -> Response:
    platform = getattr(request.app.state, "platform", None)
    if platform is not None:
        for deployment, (queued, running) in platform.gateway.slot_usage().items():
            metrics.QUEUE_DEPTH.labels(deployment).set(queued)
            metrics.IN_FLIGHT.labels(deployment).set(running)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
