"""Calibration: per-GPU efficiencies θ fitted on benchmark rows by regularised least squares, and the
p95/p50 tail ratios, both from the rows the catalog describes (`Observation`s)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hearth.planner import perf
from hearth.planner.catalog import GpuSpec, ModelSpec
from hearth.planner.perf import DEFAULT_THETA, Configs, Tails

# Offline throughput runs (every request queued at once) run at the engine's largest batch.
SATURATED_MAX_SEQS = 1024
# … and give the KV cache more of the memory: the TensorRT-LLM overview's runs use 0.95 "in many cases".
SATURATED_MEMORY_FRACTION = 0.95
# Nobody reads HBM above ~85 % of its peak or multiplies above ~80 % of peak FLOPs in serving.
THETA_BOUNDS = ((1 / 0.85, 4.0), (1 / 0.8, 8.0), (0.0, 0.02), (0.0, 0.5))
# Weight of the prior per parameter (θ_bw, θ_c, θ_o, θ_r), in units of one row's squared relative error.
# θ_o (fixed time per step) is nearly collinear with θ_bw (the weights' read time is the same every step), so
# the data barely separate them: its prior is firm. The others are identified by the rows and held loosely.
GLOBAL_PRIOR_WEIGHT = (0.1, 0.1, 3.0, 0.1)  # toward the typical values, for the fit over all GPUs
GPU_PRIOR_WEIGHT = (0.3, 0.3, 3.0, 0.3)  # toward the global fit, for one GPU's rows


def configs_for(
    models: Sequence[ModelSpec],
    quants: Sequence[str],
    gpus: Sequence[GpuSpec],
    tps: Sequence[int],
    thetas: Sequence[Sequence[float]],
) -> Configs:
    """A Configs array from parallel sequences of catalog entries."""
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
        theta_bw=[t[0] for t in thetas],
        theta_c=[t[1] for t in thetas],
        theta_o=[t[2] for t in thetas],
        theta_r=[t[3] for t in thetas],
    )


@dataclass
class Observation:
    """A benchmark row with the catalog entries it describes; `group` is its configuration."""

    row: Any
    model: ModelSpec
    gpu: GpuSpec
    group: tuple[str, str, str, int]


def latency_at(
    obs: list[Observation], thetas: Sequence[Sequence[float]], tails: Tails = Tails()
) -> tuple[Configs, perf.Latency]:
    """The model's figures at every observation's point, in one vectorised call."""
    c = configs_for(
        [o.model for o in obs],
        [o.row.quantization for o in obs],
        [o.gpu for o in obs],
        [o.row.gpu_count for o in obs],
        thetas,
    )
    p = np.array([float(o.row.prompt_tokens) for o in obs])
    n = np.array([float(o.row.output_tokens) for o in obs])
    conc = np.array([o.row.concurrency or 0.0 for o in obs])
    saturated_run = np.array([o.row.concurrency is None and o.row.request_rate is None for o in obs])
    seqs = np.where(saturated_run, SATURATED_MAX_SEQS, 256.0)
    mem = np.where(saturated_run, SATURATED_MEMORY_FRACTION, 0.9)
    limit = np.maximum(perf.max_batch(c, p + n, seqs, mem), 1.0)
    conc = np.where(saturated_run, limit, conc)
    lat = perf.closed_loop(
        c, p, n, np.maximum(conc, 1.0), max_num_seqs=seqs, gpu_memory_utilization=mem, tails=tails
    )
    rated = np.array([o.row.request_rate is not None for o in obs])
    if rated.any():
        idx = np.flatnonzero(rated)
        sub = perf.open_loop(
            c.take(idx), p[idx], n[idx], np.array([obs[i].row.request_rate for i in idx]), tails=tails
        )
        for f in fields(lat):
            getattr(lat, f.name)[idx] = getattr(sub, f.name)
    return c, lat


def _equations(
    obs: list[Observation], theta: dict[str, tuple[float, ...]], default: tuple[float, ...]
) -> list[tuple[str, np.ndarray, float]]:
    """(gpu, coefficients on θ, target seconds) per observation; queueing offsets use the current θ."""
    if not obs:
        return []
    c, lat = latency_at(obs, [theta.get(o.gpu.name, default) for o in obs])
    p = np.array([float(o.row.prompt_tokens) for o in obs])
    n = np.array([float(o.row.output_tokens) for o in obs])
    batch = np.maximum(lat.batch, 1.0)
    mem, comp, _ = perf.decode_features(c, batch, p + n / 2.0)
    pf_mem, pf_comp = perf.prefill_features(c, p)
    arrivals = batch / np.maximum(n, 1.0)
    comm = perf.allreduce_time(c, batch + arrivals * p)
    pf_comm = perf.allreduce_time(c, p)
    # TTFT = prefill + θ_r + half a step (all linear in θ) + queueing (not: taken at the current θ).
    queueing = lat.ttft_p50 - perf.prefill_time(c, p) - c.theta_r - lat.itl_p50 / 2.0
    out = []
    for i, o in enumerate(obs):
        r = o.row
        itl_obs = None
        if r.itl_ms_p50:
            itl_obs = r.itl_ms_p50 / 1e3
        elif r.output_tokens_per_s and r.concurrency is None and r.request_rate is None:
            itl_obs = batch[i] / r.output_tokens_per_s
        if itl_obs:
            a = np.array([mem[i], comp[i] + arrivals[i] * pf_comp[i], 1.0, 0.0])
            out.append((o.gpu.name, a, float(itl_obs - comm[i])))
        if r.ttft_ms_p50:
            a = np.array(
                [pf_mem[i] + 0.5 * mem[i], pf_comp[i] + 0.5 * (comp[i] + arrivals[i] * pf_comp[i]), 0.5, 1.0]
            )
            target = r.ttft_ms_p50 / 1e3 - queueing[i] - pf_comm[i] - 0.5 * comm[i]
            out.append((o.gpu.name, a, float(target)))
    return out


def _solve(
    equations: list[tuple[np.ndarray, float]], prior: Sequence[float], weights: Sequence[float]
) -> tuple[float, ...]:
    """Least squares on relative errors, with each θ_j pulled toward prior_j (ridge on θ_j / prior_j − 1)."""
    rows, targets = [], []
    for a, y in equations:
        if y <= 0:
            continue
        rows.append(a / y)
        targets.append(1.0)
    for j, (p0, weight) in enumerate(zip(prior, weights, strict=True)):
        scale = p0 if p0 > 0 else 1e-3
        e = np.zeros(4)
        e[j] = math.sqrt(weight) / scale
        rows.append(e)
        targets.append(math.sqrt(weight) * p0 / scale)
    theta, *_ = np.linalg.lstsq(np.array(rows), np.array(targets), rcond=None)
    return tuple(float(np.clip(t, lo, hi)) for t, (lo, hi) in zip(theta, THETA_BOUNDS, strict=True))


def fit_thetas(
    obs: list[Observation], iterations: int = 6
) -> tuple[tuple[float, ...], dict[str, tuple[float, ...]]]:
    """θ for all GPUs together (prior: typical efficiencies) and per GPU (prior: the global θ).

    The queueing part of TTFT is not linear in θ: it is taken at the previous iterate, and iterates are damped
    (half old, half new) so the fixed point converges instead of oscillating."""
    global_theta: tuple[float, ...] = DEFAULT_THETA
    per_gpu: dict[str, tuple[float, ...]] = {}
    for _ in range(iterations):
        eqs = _equations(obs, per_gpu, global_theta)
        if not eqs:
            return DEFAULT_THETA, {}
        new_global = _solve([(a, y) for _, a, y in eqs], DEFAULT_THETA, GLOBAL_PRIOR_WEIGHT)
        global_theta = _damp(global_theta, new_global)
        by_gpu: dict[str, list[tuple[np.ndarray, float]]] = defaultdict(list)
        for gpu, a, y in eqs:
            by_gpu[gpu].append((a, y))
        per_gpu = {
            gpu: _damp(per_gpu.get(gpu, global_theta), _solve(e, global_theta, GPU_PRIOR_WEIGHT))
            for gpu, e in by_gpu.items()
        }
    return global_theta, per_gpu


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
