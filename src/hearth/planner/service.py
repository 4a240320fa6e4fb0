"""The planner's service: the calibrated predictor (refitted when the knowledge base changes), and intent →
spec → ranked plan → manifests → deployment on top of it. The knowledge base itself is `knowledge`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.gateway.ports import AliasRegistry
from hearth.planner import deploying
from hearth.planner import manifests as mf
from hearth.planner.accuracy import expected_error, held_out_error
from hearth.planner.checks import capacity, check_point, sixteen_bit
from hearth.planner.fitting import describe_theta, is_offline
from hearth.planner.intent import extract_intent
from hearth.planner.knowledge import (
    add_benchmark_rows,
    fingerprint,
    list_benchmark_rows,
    list_gpus,
    list_models,
)
from hearth.planner.predictor import Point, Predictor
from hearth.planner.schemas import (
    BenchmarkRowIn,
    BenchmarkRowOut,
    DeployRequest,
    DeployResponse,
    IntentResponse,
    ManifestRequest,
    ManifestResponse,
    PlanRequest,
    PlanResponse,
    PredictRequest,
    PredictResponse,
)
from hearth.planner.search import plan as search_plan
from hearth.planner.spec import build_spec, expected_qps
from hearth.platform.db import Database
from hearth.platform.errors import HearthError, bad_request, not_found

if TYPE_CHECKING:
    from hearth.gateway.service import Caller, Gateway


class PlannerService:
    """Holds the calibrated predictor, rebuilt whenever the knowledge base changes (the bench adds rows).
    Implements `ports.BenchmarkSink`."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        settings: Settings,
        gateway: Gateway | None = None,
        aliases: AliasRegistry | None = None,
    ) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self.gateway = gateway  # the `chat` alias extracts intents; without it the parser does
        self.aliases = aliases  # where deploy routes an alias; without it deploy only applies
        self._predictor: Predictor | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._lock = asyncio.Lock()

    async def add_benchmark_rows(self, rows: list[BenchmarkRowIn]) -> int:
        """Store rows (all or none) and publish `BenchmarkRowsAdded`; returns how many."""
        return await add_benchmark_rows(db=self.db, bus=self.bus, rows=rows)

    async def benchmark_rows(
        self, *, model_id: str | None = None, gpu: str | None = None, limit: int = 20
    ) -> list[BenchmarkRowOut]:
        """The knowledge base's benchmark rows, newest first."""
        return await list_benchmark_rows(db=self.db, model_id=model_id, gpu=gpu, limit=limit)

    async def predictor(self) -> Predictor:
        """The predictor calibrated on the current rows (refitted when rows were added since)."""
        async with self._lock:
            fp = await fingerprint(db=self.db)
            if self._predictor is None or fp != self._fingerprint:
                models = await list_models(db=self.db)
                gpus = await list_gpus(db=self.db)
                rows = await list_benchmark_rows(db=self.db, limit=100_000)
                predictor = await asyncio.to_thread(Predictor, models, gpus, rows)
                predictor.expected_error = await asyncio.to_thread(expected_error, predictor)
                self._predictor, self._fingerprint = predictor, fp
            return self._predictor

    async def predict(self, *, request: PredictRequest) -> PredictResponse:
        """TTFT/ITL/E2E, throughput, source and confidence for one configuration and load."""
        predictor = await self.predictor()
        note = None
        if (model := predictor.models.get(request.model_id)) is not None:
            quantization, note = sixteen_bit(model.quantizations, request.quantization)
            request = request.model_copy(update={"quantization": quantization})
        check_point(predictor, request)
        point = Point(
            request.model_id,
            request.quantization,
            request.gpu,
            request.gpu_count,
            request.prompt_tokens,
            request.output_tokens,
            request.concurrency,
            request.request_rate,
            request.engine,
        )
        try:
            pred = predictor.predict(point, max_num_seqs=request.max_num_seqs)
        except LookupError as exc:
            raise not_found(str(exc), param="model_id") from None
        if pred.saturated and request.request_rate is not None and pred.source == "model":
            raise HearthError(
                422,
                f"{request.request_rate:g} requests/s exceed what {request.gpu_count}× {request.gpu} serves "
                "for "
                f"{request.model_id} at {request.prompt_tokens}→{request.output_tokens} tokens (about "
                f"{capacity(predictor, point):.2f} requests/s); lower the rate or add GPUs or replicas",
                param="request_rate",
                code="over_capacity",
            )
        return PredictResponse(
            **request.model_dump(exclude={"max_num_seqs"}),
            ttft_ms_p50=pred.ttft_ms_p50,
            ttft_ms_p95=pred.ttft_ms_p95,
            itl_ms_p50=pred.itl_ms_p50,
            itl_ms_p95=pred.itl_ms_p95,
            e2e_ms_p50=pred.e2e_ms_p50,
            e2e_ms_p95=pred.e2e_ms_p95,
            output_tokens_per_s=pred.output_tokens_per_s,
            requests_per_s=pred.requests_per_s,
            source=pred.source,
            confidence=pred.confidence,
            expected_error_pct=pred.expected_error_pct,
            expected_error_by_metric=pred.expected_error_by_metric,
            error_basis=pred.error_basis,
            running_sequences=pred.batch,
            saturated=pred.saturated,
            rows_used=pred.rows_used,
            notes=[note, *pred.notes] if note else pred.notes,
        )

    async def extract(self, *, text: str, caller: Caller, use_model: bool = True) -> IntentResponse:
        """Intent (chat model's JSON, parser as the floor) and the specification built from it."""
        try:
            intent, by = await extract_intent(text, gateway=self.gateway, caller=caller, use_model=use_model)
        except ValueError as exc:
            raise HearthError(422, str(exc), param="text", code="no_users") from None
        spec = build_spec(intent)
        return IntentResponse(
            intent=intent, extracted_by=by, spec=spec, expected_qps=expected_qps(spec.workload)
        )

    async def plan(self, *, request: PlanRequest) -> PlanResponse:
        """Ranked options for a (possibly edited) specification."""
        predictor = await self.predictor()
        return await asyncio.to_thread(
            search_plan,
            predictor,
            request.spec,
            weights=request.weights,
            models=request.models,
            gpus=request.gpus,
            limit=request.limit,
        )

    async def calibration(self) -> dict[str, Any]:
        """The fitted engine model (efficiencies per GPU, FP8 and TP costs as measured, the KV-capacity scale)
        and its error on held-out online rows: per metric, per hold-out, per source."""
        predictor = await self.predictor()
        report = await asyncio.to_thread(held_out_error, predictor)
        return {
            "rows": len(predictor.rows),
            "rows_used_for_fit": len(predictor.obs),
            "online_rows": sum(1 for o in predictor.obs if not is_offline(o.row)),
            "sources": predictor.sources_all,
            "global": describe_theta(predictor.global_theta),
            "per_gpu": {g: describe_theta(t) for g, t in sorted(predictor.theta.items())},
            "kv_scale": round(predictor.kv_scale, 3),
            "tails": asdict(predictor.tails),
            "held_out_error": report,
        }

    async def manifests(self, *, request: ManifestRequest) -> ManifestResponse:
        """Validated InferenceService + HPA for a plan option."""
        predictor = await self.predictor()
        option = request.option
        model, gpu = predictor.models.get(option.model_id), predictor.gpus.get(option.gpu)
        if model is None:
            raise not_found(
                f"unknown model {option.model_id!r}", param="option.model_id", code="unknown_model"
            )
        if gpu is None:
            raise not_found(f"unknown GPU {option.gpu!r}", param="option.gpu", code="unknown_gpu")
        quantization, _ = sixteen_bit(model.quantizations, option.quantization)
        option = option.model_copy(update={"quantization": quantization})
        if option.quantization not in model.quantizations:
            raise bad_request(
                f"{model.id} has no {option.quantization} checkpoint", param="option.quantization"
            )
        items = mf.build_manifests(
            option,
            model,
            gpu,
            name=request.name,
            namespace=request.namespace,
            max_replicas=request.max_replicas,
        )
        try:
            await asyncio.to_thread(mf.validate, items, crd_dir=self.settings.planner_kserve_crds)
        except ValueError as exc:
            raise HearthError(422, f"the manifests do not validate: {exc}", code="invalid_manifest") from None
        name = items[0]["metadata"]["name"]
        return ManifestResponse(
            name=name, namespace=request.namespace, manifests=items, yaml=mf.to_yaml(items)
        )

    async def deploy(self, *, request: DeployRequest) -> DeployResponse:
        """Apply the manifests (server-side apply), wait for Ready, route an alias to the endpoint."""
        built = await self.manifests(request=request)
        return await deploying.deploy(
            request=request, built=built, settings=self.settings, aliases=self.aliases, bus=self.bus
        )
