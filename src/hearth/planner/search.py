"""Capacity planning and ranking: every model × quantization × GPU × tensor-parallel size, vectorised.

For each candidate the search evaluates a grid of batch sizes at once, keeps the largest batch whose p95
TTFT, ITL and E2E meet the SLOs (that batch is the replica's `max_num_seqs` and sets its requests/s), sizes
the replicas for the expected QPS, prices them, predicts the latency at the load each replica will really
carry, and scores accuracy, cost, latency and complexity. Ranked lists and the Pareto front follow."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hearth.planner import perf
from hearth.planner.catalog import GpuSpec, ModelSpec
from hearth.planner.perf import Configs
from hearth.planner.predictor import Predictor
from hearth.planner.schemas import PlanOption, PlanResponse, Spec, Weights
from hearth.planner.spec import expected_qps
from hearth.platform.errors import HearthError

BATCH_GRID = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256], dtype=float)
TP_SIZES = (1, 2, 4, 8)
HOURS_PER_MONTH = 730.0
# Quality lost to quantization, in benchmark points: FP8 is within noise of bf16 in published evaluations;
# 4-bit AWQ loses about a point on MMLU-class benchmarks. Estimates, not measurements.
QUANT_QUALITY_PENALTY = {"bf16": 0.0, "fp16": 0.0, "fp8": 0.3, "int8": 0.5, "int4-awq": 1.5}


@dataclass
class Candidates:
    models: list[ModelSpec]
    quants: list[str]
    gpus: list[GpuSpec]
    tps: np.ndarray
    configs: Configs
    grid: Configs  # configs repeated for each batch size of BATCH_GRID
    price: np.ndarray  # USD per GPU-hour
    quality: np.ndarray
    context: np.ndarray


def all_candidates(predictor: Predictor) -> Candidates:
    """Every runnable (model, quantization, GPU, tp) of the catalog; cached on the predictor."""
    cached = getattr(predictor, "_candidates", None)
    if cached is not None:
        return cached
    models, quants, gpus, tps = [], [], [], []
    for m in predictor.models.values():
        for q in m.quantizations:
            for g in predictor.gpus.values():
                if not g.supports(q):
                    continue
                for tp in TP_SIZES:
                    if tp <= g.max_per_node and m.attention_heads % tp == 0:
                        models.append(m)
                        quants.append(q)
                        gpus.append(g)
                        tps.append(tp)
    configs = predictor.configs(models, quants, gpus, tps)
    reps = len(BATCH_GRID)
    grid = Configs(**{name: np.repeat(getattr(configs, name), reps) for name in configs.__dataclass_fields__})
    cands = Candidates(
        models=models,
        quants=quants,
        gpus=gpus,
        tps=np.array(tps, dtype=float),
        configs=configs,
        grid=grid,
        price=np.array([g.price_per_hour for g in gpus]),
        quality=np.array(
            [m.quality - QUANT_QUALITY_PENALTY.get(q, 0.0) for m, q in zip(models, quants, strict=True)]
        ),
        context=np.array([m.context_length for m in models], dtype=float),
    )
    predictor._candidates = cands  # type: ignore[attr-defined]
    return cands


def plan(
    predictor: Predictor,
    spec: Spec,
    *,
    weights: Weights = Weights(),
    models: list[str] | None = None,
    gpus: list[str] | None = None,
    limit: int = 10,
) -> PlanResponse:
    """Ranked options meeting the spec's SLOs at its QPS; a 422 that explains why when there are none."""
    started = time.perf_counter()
    qps = spec.qps or expected_qps(spec.workload)
    prompt, output = spec.traffic.prompt_tokens, spec.traffic.output_tokens
    gpu_filter = gpus or spec.preferred_gpus or None
    _check_names(predictor, models, gpu_filter)
    c = all_candidates(predictor)
    n = len(c.models)
    mask = np.array([spec.task in m.tasks for m in c.models])
    if models:
        mask &= np.array([m.id in models for m in c.models])
    if gpu_filter:
        mask &= np.array([g.name in gpu_filter for g in c.gpus])
    if not mask.any():
        raise HearthError(
            422,
            f"no model in the catalog supports the task {spec.task!r} with the chosen models and GPUs",
            param="spec.task",
            code="no_candidates",
        )
    mask &= c.context >= prompt + output
    if not mask.any():
        raise HearthError(
            422,
            f"no chosen model has a context of {prompt + output} tokens",
            param="spec.traffic",
            code="context_too_long",
        )
    # vLLM's --max-model-len per candidate (as spec.max_model_len, vectorised).
    mml = np.minimum(c.context, np.ceil((prompt + output) * 1.5 / 1024) * 1024)
    fits = mask & (perf.kv_capacity_tokens(c.configs) >= mml)
    if not fits.any():
        raise HearthError(422, _no_fit_message(c, mask, mml), param="spec", code="does_not_fit")

    # Every candidate at every batch size of the grid, in one call.
    reps = len(BATCH_GRID)
    batches = np.tile(BATCH_GRID, n)
    lat = perf.closed_loop(
        c.grid, prompt, output, batches, max_num_seqs=float(BATCH_GRID[-1]), tails=predictor.tails
    )
    f_itl, f_ttft, near = _corrections(predictor, c, fits, prompt, output)
    itl95 = lat.itl_p95.reshape(n, reps) * f_itl
    ttft95 = lat.ttft_p95.reshape(n, reps) * f_ttft
    itl50 = lat.itl_p50.reshape(n, reps) * f_itl
    e2e95 = ttft95 + (output - 1) * itl50 * predictor.tails.e2e
    e2e50 = lat.ttft_p50.reshape(n, reps) * f_ttft + (output - 1) * itl50
    rate = lat.requests_per_s.reshape(n, reps) * lat.e2e_p50.reshape(n, reps) / e2e50  # closed loop: B / E2E
    ok = (
        fits[:, None]
        & ~lat.saturated.reshape(n, reps)
        & (ttft95 <= spec.slo.ttft_ms_p95 / 1e3)
        & (itl95 <= spec.slo.itl_ms_p95 / 1e3)
        & (e2e95 <= spec.slo.e2e_ms_p95 / 1e3)
    )
    meets = ok.any(axis=1)
    if not meets.any():
        raise HearthError(
            422,
            _no_slo_message(c, fits, spec, ttft95[:, 0], itl95[:, 0], e2e95[:, 0]),
            param="spec.slo",
            code="slo_unattainable",
        )
    best = np.where(ok, np.arange(reps)[None, :], -1).max(axis=1)  # largest batch meeting the SLOs
    idx = np.flatnonzero(meets)
    b = best[idx]
    rps = rate[idx, b]
    replicas = np.maximum(1, np.ceil(qps / rps))
    cost = replicas * c.tps[idx] * c.price[idx] * HOURS_PER_MONTH
    # Latency at the load each replica will carry (qps / replicas), not at the limit.
    sub = c.configs.take(idx)
    at_load = perf.open_loop(
        sub, prompt, output, qps / replicas, max_num_seqs=float(BATCH_GRID[-1]), tails=predictor.tails
    )
    fi, ft = f_itl[idx, b], f_ttft[idx, b]
    op_ttft = np.minimum(at_load.ttft_p95 * ft, ttft95[idx, b])
    op_itl = np.minimum(at_load.itl_p95 * fi, itl95[idx, b])
    op_e2e = np.minimum(
        at_load.ttft_p95 * ft + (output - 1) * at_load.itl_p50 * fi * predictor.tails.e2e, e2e95[idx, b]
    )
    corrected = np.zeros(n, dtype=bool)
    corrected[idx] = near[idx, b]

    notes: list[str] = []
    keep = np.ones(len(idx), dtype=bool)
    if spec.budget_per_month is not None:
        keep = cost <= spec.budget_per_month
        if not keep.any():
            cheapest = int(np.argmin(cost))
            raise HearthError(
                422,
                f"no option meeting the SLOs fits the budget of ${spec.budget_per_month:,.0f}/month: "
                "the cheapest "
                f"is {c.models[idx[cheapest]].id} ({c.quants[idx[cheapest]]}) on {int(replicas[cheapest])}× "
                f"{int(c.tps[idx[cheapest]])} {c.gpus[idx[cheapest]].name} at ${cost[cheapest]:,.0f}/month; "
                "raise "
                "the budget, loosen the experience class or lower the expected load",
                param="spec.budget_per_month",
                code="over_budget",
            )
        if (~keep).any():
            notes.append(
                f"{int((~keep).sum())} options meeting the SLOs were dropped for exceeding the budget"
            )
    sel = np.flatnonzero(keep)
    idx, b, rps, replicas, cost = idx[sel], b[sel], rps[sel], replicas[sel], cost[sel]
    op_e2e, op_ttft, op_itl = op_e2e[sel], op_ttft[sel], op_itl[sel]
    quality = c.quality[idx]
    tps = c.tps[idx]

    q_span = max(quality.max() - quality.min(), 1e-9)
    scores = {
        "accuracy": (quality - quality.min()) / q_span if q_span > 1e-6 else np.ones(len(idx)),
        "cost": cost.min() / cost,
        "latency": op_e2e.min() / op_e2e,
        "complexity": 1.0
        / (
            1.0
            + 0.5 * np.log2(tps)
            + 0.25 * np.log2(replicas)
            + np.array([0.25 if c.quants[i] == "int4-awq" else 0.0 for i in idx])
        ),
    }
    w = weights.model_dump()
    total_w = sum(w.values()) or 1.0
    balanced = sum(w[k] * scores[k] for k in scores) / total_w
    pareto = _pareto(cost, op_e2e, -quality)

    def option(j: int) -> PlanOption:
        i = int(idx[j])
        return PlanOption(
            model_id=c.models[i].id,
            quantization=c.quants[i],
            gpu=c.gpus[i].name,
            gpu_product_label=c.gpus[i].product_label,
            gpus_per_replica=int(tps[j]),
            replicas=int(replicas[j]),
            total_gpus=int(tps[j] * replicas[j]),
            max_num_seqs=int(BATCH_GRID[b[j]]),
            max_model_len=int(mml[i]),
            ttft_ms_p95=round(float(op_ttft[j]) * 1e3, 1),
            itl_ms_p95=round(float(op_itl[j]) * 1e3, 2),
            e2e_ms_p95=round(float(op_e2e[j]) * 1e3, 1),
            requests_per_s_per_replica=round(float(rps[j]), 3),
            monthly_cost=round(float(cost[j]), 2),
            quality=round(float(quality[j]), 2),
            quality_source=c.models[i].quality_source,
            scores={k: round(float(v[j]), 4) for k, v in scores.items()}
            | {"balanced": round(float(balanced[j]), 4)},
            source="model, calibrated by nearby rows" if corrected[i] else "model",
            confidence="medium" if corrected[i] else "low",
            pareto=bool(pareto[j]),
        )

    def ranked(order: np.ndarray) -> list[PlanOption]:
        out = []
        for rank, j in enumerate(order[:limit], start=1):
            o = option(int(j))
            o.rank = rank
            out.append(o)
        return out

    # Ties broken by the balanced score so each list is stable and sensible.
    response = PlanResponse(
        spec=spec,
        expected_qps=round(qps, 4),
        candidates_evaluated=int(fits.sum()),
        candidates_meeting_slo=len(idx),
        search_ms=0.0,
        balanced=ranked(np.lexsort((cost, -balanced))),
        best_accuracy=ranked(np.lexsort((-balanced, cost, -quality))),
        cheapest=ranked(np.lexsort((-balanced, cost))),
        fastest=ranked(np.lexsort((-balanced, op_e2e))),
        simplest=ranked(np.lexsort((cost, -scores["complexity"]))),
        pareto=ranked(np.flatnonzero(pareto)[np.argsort(cost[pareto])]),
        notes=notes,
    )
    response.search_ms = round((time.perf_counter() - started) * 1e3, 2)
    return response


def _corrections(
    predictor: Predictor, c: Candidates, fits: np.ndarray, prompt: int, output: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-candidate, per-batch ITL and TTFT factors from nearby benchmark rows (1 where none are near), and
    whether the neighbours weigh enough to call the figure calibrated."""
    n, reps = len(c.models), len(BATCH_GRID)
    f_itl, f_ttft, near = np.ones((n, reps)), np.ones((n, reps)), np.zeros((n, reps), dtype=bool)
    groups = set(predictor.residuals)
    for i in np.flatnonzero(fits):
        key = (c.models[i].id, c.gpus[i].name)
        if key not in groups:
            continue
        log_itl, log_ttft, weight = predictor.correction_grid(
            key[0], key[1], c.quants[i], int(c.tps[i]), prompt, output, BATCH_GRID
        )
        f_itl[i], f_ttft[i], near[i] = np.exp(log_itl), np.exp(log_ttft), weight >= 1.0
    return f_itl, f_ttft, near


def _pareto(*objectives: np.ndarray) -> np.ndarray:
    """True where no other option is at least as good on every objective (all minimised) and better on one.
    Pairwise, one n×n comparison per objective (a 3-D comparison array is ~20× slower)."""
    n = len(objectives[0])
    at_least = np.ones((n, n), dtype=bool)  # [i, j]: i is at least as good as j on every objective
    better = np.zeros((n, n), dtype=bool)  # [i, j]: i is better than j on some objective
    for values in objectives:
        at_least &= values[:, None] <= values[None, :]
        better |= values[:, None] < values[None, :]
    return ~(at_least & better).any(axis=0)


def _check_names(predictor: Predictor, models: list[str] | None, gpus: list[str] | None) -> None:
    for name in models or []:
        if name not in predictor.models:
            raise HearthError(
                404,
                f"unknown model {name!r}; known: {', '.join(sorted(predictor.models))}",
                param="models",
                code="unknown_model",
            )
    for name in gpus or []:
        if name not in predictor.gpus:
            raise HearthError(
                404,
                f"unknown GPU {name!r}; known: {', '.join(sorted(predictor.gpus))}",
                param="gpus",
                code="unknown_gpu",
            )


def _no_fit_message(c: Candidates, mask: np.ndarray, mml: np.ndarray) -> str:
    i = int(np.flatnonzero(mask)[np.argmin(perf.weight_bytes(c.configs)[mask])])
    need = float(perf.weight_bytes(c.configs)[i]) / 1e9
    biggest = max((g for j, g in enumerate(c.gpus) if mask[j]), key=lambda g: g.memory_gb * g.max_per_node)
    return (
        f"no chosen model fits: the smallest, {c.models[i].id} ({c.quants[i]}), needs {need:.0f} GB of "
        "weights "
        f"plus a KV cache of {int(mml[i])} tokens, more than the chosen GPUs offer (largest: "
        f"{biggest.max_per_node}× {biggest.name}, {biggest.memory_gb:g} GB each); allow more or larger GPUs, "
        "a smaller model or a 4-bit quantization"
    )


def _no_slo_message(
    c: Candidates, fits: np.ndarray, spec: Spec, ttft: np.ndarray, itl: np.ndarray, e2e: np.ndarray
) -> str:
    slo = spec.slo
    # An SLO of a few picoseconds (accepted: it is positive) makes the ratio overflow to inf, which is what
    # it means: unattainable. The warning would only be noise.
    with np.errstate(over="ignore"):
        ratio = np.maximum.reduce(
            [ttft * 1e3 / slo.ttft_ms_p95, itl * 1e3 / slo.itl_ms_p95, e2e * 1e3 / slo.e2e_ms_p95]
        )
    ratio = np.where(fits, ratio, np.inf)
    i = int(np.argmin(ratio))
    parts = []
    for name, value, target in (
        ("TTFT", ttft[i], slo.ttft_ms_p95),
        ("ITL", itl[i], slo.itl_ms_p95),
        ("E2E", e2e[i], slo.e2e_ms_p95),
    ):
        if value * 1e3 > target:
            parts.append(f"{name} p95 {value * 1e3:,.0f} ms against a target of {target:,.0f} ms")
    return (
        "no configuration meets the SLOs, even serving one request at a time. The closest is "
        f"{c.models[i].id} ({c.quants[i]}) on {int(c.tps[i])}× {c.gpus[i].name}: "
        + "; ".join(parts)
        + ". Loosen the targets (another experience class), shorten the traffic profile or allow faster GPUs."
    )
