"""The planner's logic: the knowledge base in SQL, predictions, intent → spec → ranked plan → manifests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

from sqlalchemy import func, select

from hearth.planner import deploy as k8s
from hearth.planner import manifests as mf
from hearth.planner.catalog import GpuSpec, ModelSpec, seed_benchmarks, seed_gpus, seed_models
from hearth.planner.events import BenchmarkRowsAdded, PlanDeployed
from hearth.planner.intent import extract_intent
from hearth.planner.models import BenchmarkRow, CatalogModel, GpuProfile
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

log = logging.getLogger("hearth.planner")

_ROW_FIELDS = tuple(BenchmarkRowIn.model_fields)


# -- knowledge base -----------------------------------------------------------------------------------------


async def add_benchmark_rows(*, db: Database, rows: list[BenchmarkRowIn], bus: Any = None) -> int:
    """Store benchmark rows (a bench run's results, an imported report); returns how many."""
    async with db.transaction() as session:
        session.add_all(BenchmarkRow(**row.model_dump()) for row in rows)
        if bus is not None and rows:
            sources = sorted({r.source for r in rows})
            await bus.publish(
                BenchmarkRowsAdded(count=len(rows), source="; ".join(sources)[:500]), session=session
            )
    return len(rows)


async def seed_knowledge_base(*, db: Database) -> None:
    """Write the packaged catalog, GPU profiles and seed rows; refreshes existing entries, duplicates none."""
    async with db.transaction() as session:
        for m in seed_models():
            await session.merge(
                CatalogModel(**{**asdict(m), "quantizations": list(m.quantizations), "tasks": list(m.tasks)})
            )
        for g in seed_gpus():
            await session.merge(GpuProfile(**asdict(g)))
        known = set(
            (
                await session.execute(select(BenchmarkRow.seed_key).where(BenchmarkRow.seed_key.is_not(None)))
            ).scalars()
        )
        session.add_all(
            BenchmarkRow(**row.model_dump(), seed_key=key)
            for key, row in seed_benchmarks()
            if key not in known
        )


async def list_models(*, db: Database) -> list[ModelSpec]:
    """The model catalog."""
    async with db.transaction() as session:
        rows = (await session.execute(select(CatalogModel).order_by(CatalogModel.id))).scalars().all()
    return [
        ModelSpec(
            **{
                k: getattr(r, k)
                for k in ModelSpec.__dataclass_fields__
                if k not in ("quantizations", "tasks")
            },
            quantizations=tuple(r.quantizations),
            tasks=tuple(r.tasks),
        )
        for r in rows
    ]


async def list_gpus(*, db: Database) -> list[GpuSpec]:
    """The GPU profiles."""
    async with db.transaction() as session:
        rows = (await session.execute(select(GpuProfile).order_by(GpuProfile.name))).scalars().all()
    return [GpuSpec(**{k: getattr(r, k) for k in GpuSpec.__dataclass_fields__}) for r in rows]


async def list_benchmark_rows(
    *, db: Database, model_id: str | None = None, gpu: str | None = None, limit: int = 1000
) -> list[BenchmarkRowOut]:
    """Benchmark rows, newest first, optionally for one model and/or GPU."""
    query = select(BenchmarkRow).order_by(BenchmarkRow.created_at.desc(), BenchmarkRow.id).limit(limit)
    if model_id:
        query = query.where(BenchmarkRow.model_id == model_id)
    if gpu:
        query = query.where(BenchmarkRow.gpu == gpu)
    async with db.transaction() as session:
        rows = (await session.execute(query)).scalars().all()
    return [BenchmarkRowOut(id=r.id, **{k: getattr(r, k) for k in _ROW_FIELDS}) for r in rows]


async def _fingerprint(db: Database) -> tuple[Any, ...]:
    async with db.transaction() as session:
        result = await session.execute(select(func.count(BenchmarkRow.id), func.max(BenchmarkRow.created_at)))
        bench = tuple(result.one())
        result = await session.execute(select(func.count(GpuProfile.name), func.max(GpuProfile.created_at)))
        return bench + tuple(result.one())


# -- the service --------------------------------------------------------------------------------------------


class PlannerService:
    """Holds the calibrated predictor, rebuilt whenever the knowledge base changes (the bench adds rows)."""

    def __init__(self, *, db: Database, gateway: Any = None, bus: Any = None, settings: Any = None) -> None:
        self.db = db
        self.gateway = gateway
        self.bus = bus
        self.settings = settings
        self._predictor: Predictor | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._lock = asyncio.Lock()

    async def predictor(self) -> Predictor:
        """The predictor calibrated on the current rows (refitted when rows were added since)."""
        async with self._lock:
            fp = await _fingerprint(self.db)
            if self._predictor is None or fp != self._fingerprint:
                models = await list_models(db=self.db)
                gpus = await list_gpus(db=self.db)
                rows = await list_benchmark_rows(db=self.db, limit=100_000)
                predictor = await asyncio.to_thread(Predictor, models, gpus, rows)
                predictor.expected_error = await asyncio.to_thread(_expected_error, predictor)
                self._predictor, self._fingerprint = predictor, fp
            return self._predictor

    async def predict(self, *, request: PredictRequest) -> PredictResponse:
        """TTFT/ITL/E2E, throughput, source and confidence for one configuration and load."""
        predictor = await self.predictor()
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
            running_sequences=pred.batch,
            saturated=pred.saturated,
            rows_used=pred.rows_used,
            notes=pred.notes,
        )

    async def extract(self, *, text: str, caller: Any, use_model: bool = True) -> IntentResponse:
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
        """The fitted efficiencies per GPU and the model's error on held-out rows."""
        predictor = await self.predictor()
        report = await asyncio.to_thread(predictor.held_out_error)
        names = ("bandwidth_efficiency", "compute_efficiency", "step_overhead_ms", "request_overhead_ms")

        def describe(theta: tuple[float, ...]) -> dict[str, float]:
            values = (1 / theta[0], 1 / theta[1], theta[2] * 1e3, theta[3] * 1e3)
            return {n: round(v, 4) for n, v in zip(names, values, strict=True)}

        return {
            "rows": len(predictor.rows),
            "rows_used_for_fit": len(predictor.obs),
            "global": describe(predictor.global_theta),
            "per_gpu": {g: describe(t) for g, t in sorted(predictor.theta.items())},
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
            await asyncio.to_thread(mf.validate, items, crd_dir=self._crd_dir())
        except ValueError as exc:
            raise HearthError(422, f"the manifests do not validate: {exc}", code="invalid_manifest") from None
        name = items[0]["metadata"]["name"]
        return ManifestResponse(
            name=name, namespace=request.namespace, manifests=items, yaml=mf.to_yaml(items)
        )

    async def deploy(self, *, request: DeployRequest) -> DeployResponse:
        """Apply the manifests (server-side apply), wait for Ready, route an alias to the endpoint."""
        built = await self.manifests(request=request)
        if self.gateway is not None and request.alias in self.gateway.aliases:
            raise HearthError(
                409, f"alias {request.alias!r} already exists", param="alias", code="alias_exists"
            )
        s = self.settings
        try:
            api = k8s.api_client(
                kubeconfig=getattr(s, "planner_kubeconfig", None),
                context=getattr(s, "planner_kube_context", None),
                host=getattr(s, "planner_kube_api_url", None),
            )
            applied = await asyncio.to_thread(k8s.apply, api, built.manifests)
            ready, url = await asyncio.to_thread(
                k8s.wait_ready,
                api,
                built.name,
                built.namespace,
                timeout_s=request.timeout_s,
                interval_s=getattr(s, "planner_poll_seconds", 5.0),
            )
        except HearthError:
            raise
        except Exception as exc:  # the cluster's answer, whatever client error it came as
            raise HearthError(502, f"Kubernetes API: {exc}", code="kubernetes_error") from None
        url = request.endpoint or url
        registered = False
        if ready and url and self.gateway is not None:
            base = url.rstrip("/") + ("" if url.rstrip("/").endswith("/v1") else "/v1")
            await k8s.register_alias(self.gateway, alias=request.alias, base_url=base, model=built.name)
            registered = True
        if self.bus is not None:
            await self.bus.publish(
                PlanDeployed(
                    name=built.name,
                    namespace=built.namespace,
                    model_id=request.option.model_id,
                    gpu=request.option.gpu,
                    replicas=request.option.replicas,
                    url=url,
                    ready=ready,
                    alias=request.alias if registered else None,
                )
            )
        return DeployResponse(
            name=built.name,
            namespace=built.namespace,
            applied=applied,
            ready=ready,
            url=url,
            alias=request.alias,
            registered=registered,
        )

    def _crd_dir(self) -> Any:
        return getattr(self.settings, "planner_kserve_crds", None)


_ERROR_CACHE: dict[str, dict[str, float]] = {}


def _expected_error(predictor: Predictor) -> dict[str, float]:
    """Median held-out error of ITL-type predictions (the figure that sizes the plan), per kind; cached per
    distinct set of rows, since every process starts from the same seed rows."""
    text = sorted(json.dumps({k: getattr(r, k) for k in _ROW_FIELDS}, default=str) for r in predictor.rows)
    key = hashlib.sha256("\n".join(text).encode()).hexdigest()
    if key in _ERROR_CACHE:
        return _ERROR_CACHE[key]
    report = predictor.held_out_error()
    out = {}
    for mode in ("with_neighbours", "model_only"):
        metrics = report.get(mode, {})
        values = [
            m["median_pct"] for name, m in metrics.items() if name in ("output_tokens_per_s", "itl_ms_p50")
        ]
        if values:
            out[mode] = round(max(values), 1)
    _ERROR_CACHE[key] = out
    return out


def check_point(predictor: Predictor, request: PredictRequest) -> None:
    """Unknown model, GPU or quantization, or a configuration that cannot run: a 4xx that says why."""
    has_rows = any(r.model_id == request.model_id and r.gpu == request.gpu for r in predictor.rows)
    if request.concurrency is not None and request.request_rate is not None:
        raise bad_request("give concurrency or request_rate, not both", param="concurrency")
    if request.model_id not in predictor.models and not has_rows:
        raise not_found(
            f"unknown model {request.model_id!r}; known: {', '.join(sorted(predictor.models))}",
            param="model_id",
            code="unknown_model",
        )
    if request.gpu not in predictor.gpus and not has_rows:
        raise not_found(
            f"unknown GPU {request.gpu!r}; known: {', '.join(sorted(predictor.gpus))}",
            param="gpu",
            code="unknown_gpu",
        )
    model, gpu = predictor.models.get(request.model_id), predictor.gpus.get(request.gpu)
    if model is None or gpu is None:
        return
    if request.gpu_count < 1:
        raise bad_request(f"{gpu.name} needs at least one GPU per replica", param="gpu_count")
    if request.quantization not in model.quantizations:
        raise bad_request(
            f"{model.id} has no {request.quantization} checkpoint in the catalog; "
            f"choose one of {', '.join(model.quantizations)}",
            param="quantization",
        )
    if not gpu.supports(request.quantization):
        raise bad_request(f"{gpu.name} has no FP8 tensor cores; use bf16 or int4-awq", param="quantization")
    if model.attention_heads % request.gpu_count:
        raise bad_request(
            f"tensor parallel size {request.gpu_count} must divide the {model.attention_heads} "
            f"attention heads of {model.id}",
            param="gpu_count",
        )
    if request.gpu_count > gpu.max_per_node:
        raise bad_request(
            f"at most {gpu.max_per_node} {gpu.name} GPUs fit in one node (tensor parallel within a node)",
            param="gpu_count",
        )
    if request.prompt_tokens + request.output_tokens > model.context_length:
        raise bad_request(
            f"{request.prompt_tokens}+{request.output_tokens} tokens exceed the "
            f"{model.context_length}-token context of {model.id}",
            param="prompt_tokens",
        )
    from hearth.planner import perf

    c = predictor.configs([model], [request.quantization], [gpu], [request.gpu_count])
    weights_gb = float(perf.weight_bytes(c)[0]) / 1e9
    if perf.max_batch(c, request.prompt_tokens + request.output_tokens, 1e9)[0] < 1:
        raise HearthError(
            422,
            f"{model.id} ({request.quantization}, {weights_gb:.0f} GB of weights) does not fit with a "
            f"{request.prompt_tokens + request.output_tokens}-token KV cache on "
            f"{request.gpu_count}× {gpu.name} "
            f"({gpu.memory_gb:g} GB each); use more GPUs, a smaller quantization or a larger GPU",
            param="gpu_count",
            code="does_not_fit",
        )


def capacity(predictor: Predictor, point: Point) -> float:
    """Requests/s the configuration serves at its largest batch."""
    from hearth.planner import perf

    model, gpu = predictor.models[point.model_id], predictor.gpus[point.gpu]
    c = predictor.configs([model], [point.quantization], [gpu], [point.gpu_count])
    limit = max(float(perf.max_batch(c, point.prompt_tokens + point.output_tokens)[0]), 1.0)
    lat = perf.closed_loop(c, point.prompt_tokens, point.output_tokens, limit, tails=predictor.tails)
    return float(lat.requests_per_s[0])
