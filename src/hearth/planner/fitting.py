"""Calibration: the engine model's efficiencies θ fitted on benchmark rows by regularised least squares,
the KV-capacity scale the engines were measured to hold, and the p95/p50 tail ratios, all from the rows the
catalog describes (`Observation`s).

θ has ten entries (`THETA_NAMES`): bandwidth and compute inverse efficiencies for 16-bit and for FP8
kernels (so FP8's speed-up is the measured one, not the nominal 2×), the host's overhead per step, per request
and per running sequence per step, the latency of one round of a tensor-parallel all-reduce (TP's measured
cost), the API server's time per other stream and FP8's fixed cost per layer per step. The closed loop's
cohort wait has no parameter of its own: the prompts ahead of a newcomer run at the compute efficiency
(θ_sync = θ_c). Fitted freely, θ_sync took whatever the sources at hand taught (0.39–0.72 of θ_c on all rows,
~0 with the NIM sweep held out, since the other sources show no cohort), and every hold-out predicted worse.

Online rows (streaming clients at a load) are what the model is fitted on; offline rows (every request queued
at once) only inform the ceiling: their throughput enters with a small weight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from hearth.planner import perf
from hearth.planner.catalog import GpuSpec, ModelSpec
from hearth.planner.perf import Configs, Tails

THETA_NAMES = ("bw", "bw_fp8", "c", "c_fp8", "o", "r", "s", "ar", "q", "f8")
# Typical values: 70 % of peak bandwidth and 45 % of peak FLOPs for 16-bit kernels; FP8 kernels reach a
# smaller share of their doubled peak (a prior only: the fit moves it where FP8 rows exist). Host: 0.6 ms per
# step, 15 ms per request, 20 µs per running sequence per step; 10 µs per all-reduce call (NVLink); 1 ms of
# the API server's time per other stream before a new request is scheduled; 16 µs of FP8 work per layer per
# step.
DEFAULT_THETA = (
    1 / 0.70,
    1.4 / 0.70,
    1 / 0.45,
    1.6 / 0.45,
    0.6e-3,
    15e-3,
    20e-6,
    10e-6,
    1e-3,
    16e-6,
)
# Offline throughput runs (every request queued at once) run at the engine's largest batch.
SATURATED_MAX_SEQS = 1024
# … and give the KV cache more of the memory: the TensorRT-LLM overview's runs use 0.95 "in many cases".
SATURATED_MEMORY_FRACTION = 0.95
# Nobody reads HBM above ~85 % of its peak or multiplies above ~80 % of peak FLOPs in serving.
THETA_BOUNDS = (
    (1 / 0.85, 4.0),
    (1 / 0.85, 6.0),
    (1 / 0.8, 8.0),
    (1 / 0.8, 12.0),
    (0.0, 0.02),
    (0.0, 0.5),
    (0.0, 1e-3),
    (0.0, 1e-4),
    (0.0, 0.05),
    (0.0, 1e-4),
)
# Weight of the prior per parameter, in units of one row's squared relative error. θ_o (fixed time per step)
# is nearly collinear with θ_bw (the weights' read time is the same every step) and θ_s with the KV-cache read
# (both grow with the batch): their priors are firm. The others are identified by the rows and held loosely.
# All GPUs together, toward the typical values; then one GPU's rows, toward the global fit.
GLOBAL_PRIOR_WEIGHT = (0.1, 0.1, 0.1, 0.1, 3.0, 0.03, 1.0, 0.1, 0.03, 0.03)
GPU_PRIOR_WEIGHT = (0.3, 0.3, 0.3, 0.3, 3.0, 0.1, 1.0, 0.3, 0.1, 0.1)
# Offline rows only inform the ceiling: their equations weigh this much against an online row's.
OFFLINE_WEIGHT = 0.25
# TTFT rows whose predicted queueing is more than this share of the measurement calibrate the KV scale (the
# batch limit), not θ: their linear part is a small difference of large numbers.
QUEUE_SHARE_FOR_THETA = 0.5
KV_SCALE_GRID = np.geomspace(0.6, 1.6, 41)
KV_SCALE_PRIOR_WEIGHT = 2.0  # on log(κ)², against the sum of squared log errors of the online rows


ENGINES = ("vllm", "tensorrt-llm")


def engine_kind(engine: str | None) -> str:
    """Which memory accounting a row's engine uses: TensorRT-LLM (NIM runs it) or vLLM (the default)."""
    text = (engine or "").lower()
    return "tensorrt-llm" if any(k in text for k in ("tensorrt", "trt-llm", "nim")) else "vllm"


def is_fp8(quantization: str) -> bool:
    """Whether the quantization runs FP8 kernels (its own efficiencies)."""
    return perf.QUANTIZATIONS[quantization][1] == "fp8"


def configs_for(
    models: Sequence[ModelSpec],
    quants: Sequence[str],
    gpus: Sequence[GpuSpec],
    tps: Sequence[int],
    thetas: Sequence[Sequence[float]],
    kv_scale: float = 1.0,
    engines: Sequence[str] | None = None,
) -> Configs:
    """A Configs array from parallel sequences of catalog entries; θ as tuples (`THETA_NAMES`); engines as
    `ENGINES` (vLLM when not given)."""
    fp8 = [is_fp8(q) for q in quants]
    theta_c = [t[3] if f else t[2] for t, f in zip(thetas, fp8, strict=True)]
    return Configs.of(
        params=[m.params_b * 1e9 for m in models],
        active=[m.active_params_b * 1e9 for m in models],
        layers=[m.layers for m in models],
        hidden=[m.hidden_size for m in models],
        kv_heads=[m.kv_heads for m in models],
        head_dim=[m.head_dim for m in models],
        bytes_per_param=[perf.QUANTIZATIONS[q][0] for q in quants],
        kv_bytes=[perf.QUANTIZATIONS[q][2] for q in quants],
        flops=[g.peak_flops(q) for g, q in zip(gpus, quants, strict=True)],
        bandwidth=[g.bandwidth_gbs * 1e9 for g in gpus],
        memory=[g.memory_gb * 1e9 for g in gpus],
        link=[g.interconnect_gbs * 1e9 for g in gpus],
        tp=list(tps),
        theta_bw=[t[1] if f else t[0] for t, f in zip(thetas, fp8, strict=True)],
        theta_c=theta_c,
        theta_o=[t[4] for t in thetas],
        theta_r=[t[5] for t in thetas],
        theta_s=[t[6] for t in thetas],
        theta_ar=[t[7] for t in thetas],
        theta_q=[t[8] for t in thetas],
        theta_f8=[t[9] if f else 0.0 for t, f in zip(thetas, fp8, strict=True)],
        # The cohort's prompts ahead of a newcomer run at the compute efficiency.
        theta_sync=theta_c,
        kv_scale=kv_scale,
        kv_of_free=[1.0 if e == "tensorrt-llm" else 0.0 for e in (engines or ["vllm"] * len(models))],
    )


@dataclass
class Observation:
    """A benchmark row with the catalog entries it describes; `group` is its configuration."""

    row: Any
    model: ModelSpec
    gpu: GpuSpec
    group: tuple[str, str, str, int]


def is_offline(row: Any) -> bool:
    """An offline (maximum-throughput) row: marked so, or stored without any load."""
    return getattr(row, "mode", None) == "offline" or (row.concurrency is None and row.request_rate is None)


def latency_at(
    obs: list[Observation], thetas: Sequence[Sequence[float]], tails: Tails = Tails(), kv_scale: float = 1.0
) -> tuple[Configs, perf.Latency]:
    """The model's figures at every observation's point, in one vectorised call."""
    c = configs_for(
        [o.model for o in obs],
        [o.row.quantization for o in obs],
        [o.gpu for o in obs],
        [o.row.gpu_count for o in obs],
        thetas,
        kv_scale,
        [engine_kind(getattr(o.row, "engine", None)) for o in obs],
    )
    p = np.array([float(o.row.prompt_tokens) for o in obs])
    n = np.array([float(o.row.output_tokens) for o in obs])
    conc = np.array([o.row.concurrency or 0.0 for o in obs])
    saturated_run = np.array([is_offline(o.row) and o.row.request_rate is None for o in obs])
    seqs = np.where(saturated_run, SATURATED_MAX_SEQS, 256.0)
    mem = np.where(saturated_run, SATURATED_MEMORY_FRACTION, 0.9)
    limit = np.maximum(perf.max_batch(c, p + n, seqs, mem), 1.0)
    conc = np.where(saturated_run, limit, np.maximum(conc, 1.0))
    lat = perf.closed_loop(c, p, n, conc, max_num_seqs=seqs, gpu_memory_utilization=mem, tails=tails)
    rated = np.array([o.row.request_rate is not None for o in obs])
    if rated.any():
        idx = np.flatnonzero(rated)
        sub = perf.open_loop(
            c.take(idx), p[idx], n[idx], np.array([obs[i].row.request_rate for i in idx]), tails=tails
        )
        for f in fields(lat):
            getattr(lat, f.name)[idx] = getattr(sub, f.name)
    return c, lat


@dataclass
class Equations:
    """The linear system of one calibration pass: per measured ITL/TTFT, its GPU, coefficients on θ, target
    seconds and weight (arrays, one row per equation)."""

    gpu: np.ndarray
    a: np.ndarray
    y: np.ndarray
    w: np.ndarray

    def take(self, mask: np.ndarray) -> Equations:
        return Equations(self.gpu[mask], self.a[mask], self.y[mask], self.w[mask])


def _equations(
    obs: list[Observation], theta: dict[str, tuple[float, ...]], default: tuple[float, ...], kv_scale: float
) -> Equations:
    """Every measured ITL and TTFT as a linear equation in θ, with the queueing taken at the current θ."""
    c, lat = latency_at(obs, [theta.get(o.gpu.name, default) for o in obs], kv_scale=kv_scale)
    p = np.array([float(o.row.prompt_tokens) for o in obs])
    n = np.array([float(o.row.output_tokens) for o in obs])
    fp8 = np.array([is_fp8(o.row.quantization) for o in obs])
    offline = np.array([is_offline(o.row) for o in obs])
    rated = np.array([o.row.request_rate is not None for o in obs])
    itl_ms = np.array([o.row.itl_ms_p50 or np.nan for o in obs], dtype=float)
    tps = np.array([o.row.output_tokens_per_s or np.nan for o in obs], dtype=float)
    ttft_s = np.array([o.row.ttft_ms_p50 or np.nan for o in obs], dtype=float) / 1e3
    gpu = np.array([o.gpu.name for o in obs])
    batch = np.maximum(lat.batch, 1.0)
    others = batch - 1.0
    ctx = p + n / 2.0
    mem, comp, one = perf.decode_features(c, batch, ctx)
    chunks = perf.prefill_chunks(p, others, perf.DEFAULT_MAX_BATCHED_TOKENS)
    pf_mem, pf_comp = perf.prefill_features(c, p, chunks)
    pf_comp_alone = perf.prefill_features(c, p)[1]
    half = perf.in_flight(batch) * 0.5
    arrivals = batch / np.maximum(n, 1.0)
    hops = perf.allreduce_hops(c)
    f8 = np.where(fp8, c.layers, 0.0)
    transfer = perf.allreduce_transfer(c, batch + arrivals * p)
    kv_mem = others * ctx * perf.kv_read_bytes_per_token(c) / c.bandwidth
    dec_comp = 2.0 * c.active * others / (c.tp * c.flops)
    pf_transfer = perf.allreduce_transfer(c, p + chunks * others)
    # TTFT = loaded prefill + front-end wait + θ_r + half a step (all linear in θ) + queueing (not: taken at
    # the current θ).
    loaded = perf.prefill_time(c, p, others, ctx) + c.theta_q * others
    # The closed loop's cohort (compute at θ_c: θ_sync = θ_c); open-loop rows have none.
    conc = np.array([float(o.row.concurrency or 0.0) for o in obs])
    conc = np.where(offline & ~rated, batch, np.maximum(conc, 1.0))
    members = np.where(rated, 0.0, perf.cohort_ahead(perf.cohort_size(lat.batch, conc), p))  # prompts ahead
    cohort_feature = members * pf_comp_alone
    queueing = lat.ttft_p50 - loaded - c.theta_r - half * lat.itl_p50 - c.theta_c * cohort_feature
    zero = np.zeros_like(p)

    def route(bandwidth: np.ndarray, compute: np.ndarray) -> list[np.ndarray]:
        # 16-bit work on (θ_bw, θ_c), FP8 work on (θ_bw_fp8, θ_c_fp8)
        return [
            np.where(fp8, 0.0, bandwidth),
            np.where(fp8, bandwidth, 0.0),
            np.where(fp8, 0.0, compute),
            np.where(fp8, compute, 0.0),
        ]

    bw16, bw8, c16, c8 = route(mem, comp + arrivals * pf_comp)
    step = np.column_stack([bw16, bw8, c16, c8, one, zero, batch, hops, zero, f8])
    k = chunks
    bw16, bw8, c16, c8 = route(k * (pf_mem + kv_mem), k * dec_comp + pf_comp + cohort_feature)
    prefill = np.column_stack([bw16, bw8, c16, c8, k, one, k * others, k * hops, others, k * f8])
    # ITL: measured, or for a saturated offline run the batch over its throughput.
    itl_obs = np.where(np.isnan(itl_ms), np.where(offline & ~rated, batch / tps, np.nan), itl_ms / 1e3)
    weight = np.where(offline, OFFLINE_WEIGHT, 1.0)
    use_itl = np.isfinite(itl_obs) & (itl_obs > 0)
    with np.errstate(invalid="ignore"):
        use_ttft = np.isfinite(ttft_s) & (ttft_s > 0) & (queueing < QUEUE_SHARE_FOR_THETA * ttft_s)
    ttft_target = ttft_s - queueing - pf_transfer - half * transfer
    return Equations(
        gpu=np.concatenate([gpu[use_itl], gpu[use_ttft]]),
        a=np.vstack([step[use_itl], (prefill + half[:, None] * step)[use_ttft]]),
        y=np.concatenate([(itl_obs - transfer)[use_itl], ttft_target[use_ttft]]),
        w=np.concatenate([weight[use_itl], weight[use_ttft]]),
    )


def _solve(eq: Equations, prior: Sequence[float], weights: Sequence[float]) -> tuple[float, ...]:
    """Least squares on relative errors, with each θ_j pulled toward prior_j (ridge on θ_j / prior_j − 1)."""
    keep = eq.y > 0
    root = np.sqrt(eq.w[keep])
    rows = eq.a[keep] / eq.y[keep, None] * root[:, None]
    scale = np.array([p0 if p0 > 0 else 1e-3 for p0 in prior])
    ridge = np.diag(np.sqrt(np.asarray(weights)) / scale)
    targets = np.concatenate([root, np.sqrt(np.asarray(weights)) * np.asarray(prior) / scale])
    # The normal equations (10 × 10; the ridge keeps them well posed): lstsq on the tall system is 30× slower.
    m = np.vstack([rows, ridge])
    theta, *_ = np.linalg.lstsq(m.T @ m, m.T @ targets, rcond=None)
    return tuple(float(np.clip(t, lo, hi)) for t, (lo, hi) in zip(theta, THETA_BOUNDS, strict=True))


@dataclass
class Fit:
    """What calibration produced: θ for all GPUs and per GPU, and the KV-capacity scale."""

    global_theta: tuple[float, ...]
    per_gpu: dict[str, tuple[float, ...]]
    kv_scale: float


def fit(obs: list[Observation], iterations: int = 6) -> Fit:
    """θ for all GPUs together (prior: typical efficiencies), per GPU (prior: the global θ), and κ.

    The queueing part of TTFT is not linear in θ: it is taken at the previous iterate, and iterates are
    damped (half old, half new) so the fixed point converges instead of oscillating. κ (what the KV cache
    holds ÷ what the memory arithmetic says) is chosen on a grid by the online rows' log errors, so rows at
    and beyond the batch limit (TTFT growing by whole request times) set the limit."""
    global_theta: tuple[float, ...] = DEFAULT_THETA
    per_gpu: dict[str, tuple[float, ...]] = {}
    kv_scale = 1.0
    if not obs:
        return Fit(DEFAULT_THETA, {}, 1.0)
    for iteration in range(iterations):
        eqs = _equations(obs, per_gpu, global_theta, kv_scale)
        if not len(eqs.y):
            return Fit(DEFAULT_THETA, {}, 1.0)
        global_theta = _damp(global_theta, _solve(eqs, DEFAULT_THETA, GLOBAL_PRIOR_WEIGHT))
        per_gpu = {
            gpu: _damp(
                per_gpu.get(gpu, global_theta),
                _solve(eqs.take(eqs.gpu == gpu), global_theta, GPU_PRIOR_WEIGHT),
            )
            for gpu in sorted(set(eqs.gpu.tolist()))
        }
        if iteration == iterations - 2:  # once θ has settled; the last pass refits θ at this κ
            kv_scale = fit_kv_scale(obs, per_gpu, global_theta)
    return Fit(global_theta, per_gpu, kv_scale)


def fit_kv_scale(
    obs: list[Observation], per_gpu: dict[str, tuple[float, ...]], global_theta: tuple[float, ...]
) -> float:
    """κ on a grid: the least squared log error of TTFT and throughput over the online rows, plus a prior."""
    online = [o for o in obs if not is_offline(o.row) and o.row.concurrency]
    if not online:
        return 1.0
    ttft_obs = np.array([o.row.ttft_ms_p50 or np.nan for o in online]) / 1e3
    tps_obs = np.array([o.row.output_tokens_per_s or np.nan for o in online])
    c = configs_for(
        [o.model for o in online],
        [o.row.quantization for o in online],
        [o.gpu for o in online],
        [o.row.gpu_count for o in online],
        [per_gpu.get(o.gpu.name, global_theta) for o in online],
        engines=[engine_kind(getattr(o.row, "engine", None)) for o in online],
    )
    # Every κ of the grid at every row, in one vectorised call.
    k, g = len(online), len(KV_SCALE_GRID)
    grid = replace(c.take(np.tile(np.arange(k), g)), kv_scale=np.repeat(KV_SCALE_GRID, k))
    p = np.tile([float(o.row.prompt_tokens) for o in online], g)
    n = np.tile([float(o.row.output_tokens) for o in online], g)
    conc = np.tile([float(o.row.concurrency) for o in online], g)
    lat = perf.closed_loop(grid, p, n, conc)
    with np.errstate(invalid="ignore", divide="ignore"):
        e1 = np.log(lat.ttft_p50.reshape(g, k) / ttft_obs)
        e2 = np.log(lat.output_tokens_per_s.reshape(g, k) / tps_obs)
    loss = np.nansum(np.square(e1), axis=1) + np.nansum(np.square(e2), axis=1)
    loss = loss + KV_SCALE_PRIOR_WEIGHT * np.square(np.log(KV_SCALE_GRID))
    return float(KV_SCALE_GRID[int(np.argmin(loss))])


def describe_theta(theta: Sequence[float]) -> dict[str, float]:
    """θ in the units people read: efficiencies as shares of peak, overheads in ms, the FP8 speed-ups."""
    t = dict(zip(THETA_NAMES, theta, strict=True))
    return {
        "bandwidth_efficiency": round(1 / t["bw"], 4),
        "compute_efficiency": round(1 / t["c"], 4),
        "fp8_bandwidth_efficiency": round(1 / t["bw_fp8"], 4),
        "fp8_compute_efficiency": round(1 / t["c_fp8"], 4),
        # Time per byte-of-16-bit-weights read in FP8 vs 16-bit: 2.0 would be the nominal halving.
        "fp8_decode_speedup": round(2.0 * t["bw"] / t["bw_fp8"], 3),
        "fp8_prefill_speedup": round(2.0 * t["c"] / t["c_fp8"], 3),
        "step_overhead_ms": round(t["o"] * 1e3, 4),
        "request_overhead_ms": round(t["r"] * 1e3, 3),
        "per_sequence_step_overhead_us": round(t["s"] * 1e6, 2),
        "allreduce_call_us": round(t["ar"] * 1e6, 2),
        "frontend_per_stream_ms": round(t["q"] * 1e3, 3),
        "fp8_layer_step_us": round(t["f8"] * 1e6, 2),
    }


def _damp(old: tuple[float, ...], new: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(0.5 * (a + b) for a, b in zip(old, new, strict=True))


def fit_tails(obs: list[Observation]) -> Tails:
    """p95/p50 ratios from rows that report both; defaults where none do."""
    ttft, e2e, itl_x, itl_y = [], [], [], []
    for o in obs:
        r = o.row
        if r.ttft_ms_p50 and r.ttft_ms_p95:
            ttft.append(r.ttft_ms_p95 / r.ttft_ms_p50)
        if r.itl_ms_p50 and r.itl_ms_p95:
            batch = min(r.concurrency or 1.0, 1e9)
            itl_x.append(min(1.0, batch / max(r.output_tokens, 1)))
            itl_y.append(r.itl_ms_p95 / r.itl_ms_p50 - 1.0)
        if r.e2e_ms_p50 and r.e2e_ms_p95 and r.ttft_ms_p50 and r.ttft_ms_p95:
            decode50 = r.e2e_ms_p50 - r.ttft_ms_p50
            if decode50 > 0:
                e2e.append((r.e2e_ms_p95 - r.ttft_ms_p95) / decode50)
    default = Tails()
    itl_base, itl_slope = default.itl_base, default.itl_slope
    if len(itl_x) >= 3:
        a = np.column_stack([np.ones(len(itl_x)), itl_x])
        (itl_base, itl_slope), *_ = np.linalg.lstsq(a, np.array(itl_y), rcond=None)
    return Tails(
        ttft=float(np.clip(np.median(ttft), 1.0, 5.0)) if ttft else default.ttft,
        itl_base=float(np.clip(itl_base, 0.0, 1.0)),
        itl_slope=float(np.clip(itl_slope, 0.0, 10.0)),
        e2e=float(np.clip(np.median(e2e), 1.0, 2.0)) if e2e else default.e2e,
    )
