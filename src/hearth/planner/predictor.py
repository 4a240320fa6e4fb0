"""Predictions from the benchmark rows and the analytic model, and the model's calibration on those rows.

Three sources, best first:
1. a row for the exact point (model, quantization, GPU, count, prompt/output tokens, load) is a measurement;
2. the analytic model (`perf`) with per-GPU efficiencies θ fitted on all rows by regularised least squares,
   corrected by the residuals of nearby rows of the same model and GPU (nearer in log prompt, output, load and
   GPU count weighs more) — this is how rows the bench adds move the predictions around them;
3. rows only, for hardware the catalog does not describe (a CPU run of the embedded model): the nearest rows.
`leave_one_out` reports the model's error on rows held out from its calibration.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
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


@dataclass(frozen=True)
class Point:
    model_id: str
    quantization: str
    gpu: str
    gpu_count: int
    prompt_tokens: int
    output_tokens: int
    concurrency: float | None = None
    request_rate: float | None = None


@dataclass
class Prediction:
    ttft_ms_p50: float | None
    ttft_ms_p95: float | None
    itl_ms_p50: float | None
    itl_ms_p95: float | None
    e2e_ms_p50: float | None
    e2e_ms_p95: float | None
    output_tokens_per_s: float | None
    requests_per_s: float | None
    source: str  # measured | estimated | synthetic (an exact row of that kind) | model | rows
    confidence: str  # high | medium | low
    expected_error_pct: float | None
    batch: float | None = None
    saturated: bool = False
    rows_used: list[str] = field(default_factory=list)  # sources of the rows behind the figure
    notes: list[str] = field(default_factory=list)


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
class _Obs:
    row: Any
    model: ModelSpec
    gpu: GpuSpec
    group: tuple[str, str, str, int]


class Predictor:
    """Calibrated on a set of rows; answers predictions for points and arrays of configurations."""

    def __init__(self, models: Iterable[ModelSpec], gpus: Iterable[GpuSpec], rows: Iterable[Any]) -> None:
        self.models = {m.id: m for m in models}
        self.gpus = {g.name: g for g in gpus}
        self.rows = list(rows)
        self.obs = [
            _Obs(
                r, self.models[r.model_id], self.gpus[r.gpu], (r.model_id, r.quantization, r.gpu, r.gpu_count)
            )
            for r in self.rows
            if r.model_id in self.models
            and r.gpu in self.gpus
            and r.quantization in perf.QUANTIZATIONS
            and r.gpu_count >= 1
        ]
        self.global_theta, self.theta = fit_thetas(self.obs)
        self.tails = fit_tails(self.obs, self)
        self.residuals = self._residuals(self.obs)

    # -- θ per GPU ----------------------------------------------------------------------------------------

    def theta_for(self, gpu: str) -> tuple[float, float, float, float]:
        return self.theta.get(gpu, self.global_theta)

    def configs(
        self, models: Sequence[ModelSpec], quants: Sequence[str], gpus: Sequence[GpuSpec], tps: Sequence[int]
    ) -> Configs:
        return configs_for(models, quants, gpus, tps, [self.theta_for(g.name) for g in gpus])

    # -- residuals of rows against the model -------------------------------------------------------------

    def _residuals(self, obs: list[_Obs]) -> dict[tuple[str, str], list[tuple[np.ndarray, str, float, str]]]:
        """(model, gpu) → [(position, metric, log(observed / model), source)] for the local correction."""
        out: dict[tuple[str, str], list[tuple[np.ndarray, str, float, str]]] = defaultdict(list)
        if not obs:
            return out
        _, lat = _latency_of(obs, [self.theta_for(o.gpu.name) for o in obs], self.tails)
        for i, o in enumerate(obs):
            one = perf.Latency(**{f.name: getattr(lat, f.name)[i : i + 1] for f in fields(lat)})
            pos = _position(
                o.row.quantization,
                o.row.gpu_count,
                o.row.prompt_tokens,
                o.row.output_tokens,
                float(lat.batch[i]),
            )
            for metric, observed, predicted in _pairs(o.row, one):
                out[(o.model.id, o.gpu.name)].append(
                    (pos, metric, math.log(observed / predicted), o.row.source)
                )
        return out

    def correction(
        self,
        model_id: str,
        gpu: str,
        quantization: str,
        gpu_count: int,
        prompt: float,
        output: float,
        batch: float,
    ) -> tuple[dict[str, float], float, list[str]]:
        """Log factors per metric from nearby rows, their total weight, and their sources."""
        entries = self.residuals.get((model_id, gpu))
        if not entries:
            return {}, 0.0, []
        pos = _position(quantization, gpu_count, prompt, output, batch)
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        sources: dict[str, float] = {}
        total = 0.0
        for where, metric, resid, source in entries:
            w = math.exp(-0.5 * float(np.sum(np.square(pos - where))))
            if w < 1e-3:
                continue
            sums[metric][0] += w * resid
            sums[metric][1] += w
            total += w
            sources[source] = max(sources.get(source, 0.0), w)
        # Shrink toward the model when the neighbours are few or far (0.3: one row at distance ~1.5 halves).
        factors = {m: s / (wt + 0.3) for m, (s, wt) in sums.items()}
        return factors, total, sorted(sources, key=lambda s: -sources[s])[:3]

    def correction_grid(
        self,
        model_id: str,
        gpu: str,
        quantization: str,
        gpu_count: int,
        prompt: float,
        output: float,
        batches: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`correction` for many batch sizes at once: arrays of log ITL factor, log TTFT factor, weight."""
        k = len(batches)
        arrays = self._residual_arrays().get((model_id, gpu))
        if arrays is None:
            return np.zeros(k), np.zeros(k), np.zeros(k)
        where, is_itl, resid = arrays
        here = np.tile(_position(quantization, gpu_count, prompt, output, 1.0), (k, 1))
        here[:, 2] = np.log2(np.maximum(batches, 1.0)) / 2.0  # only the batch coordinate varies
        w = np.exp(-0.5 * np.square(here[:, None, :] - where[None, :, :]).sum(axis=2))
        w[w < 1e-3] = 0.0
        log_itl = (w[:, is_itl] @ resid[is_itl]) / (w[:, is_itl].sum(axis=1) + 0.3)
        log_ttft = (w[:, ~is_itl] @ resid[~is_itl]) / (w[:, ~is_itl].sum(axis=1) + 0.3)
        return log_itl, log_ttft, w.sum(axis=1)

    def _residual_arrays(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        cached = getattr(self, "_arrays", None)
        if cached is None:
            cached = {
                key: (
                    np.stack([e[0] for e in entries]),
                    np.array([e[1] == "itl" for e in entries]),
                    np.array([e[2] for e in entries]),
                )
                for key, entries in self.residuals.items()
                if entries
            }
            self._arrays = cached
        return cached

    # -- predictions -------------------------------------------------------------------------------------

    def _raw(
        self,
        model: ModelSpec,
        quant: str,
        gpu: GpuSpec,
        count: int,
        prompt: float,
        output: float,
        concurrency: float | None,
        rate: float | None,
        *,
        max_num_seqs: float | None = None,
    ) -> perf.Latency:
        c = self.configs([model], [quant], [gpu], [count])
        if rate is not None:
            return perf.open_loop(c, prompt, output, rate, max_num_seqs=max_num_seqs or 256, tails=self.tails)
        if concurrency is None:  # offline throughput: as many as fit
            seqs = max_num_seqs or SATURATED_MAX_SEQS
            frac = SATURATED_MEMORY_FRACTION
            concurrency = float(perf.max_batch(c, prompt + output, seqs, frac)[0])
            return perf.closed_loop(
                c,
                prompt,
                output,
                max(concurrency, 1.0),
                max_num_seqs=seqs,
                gpu_memory_utilization=frac,
                tails=self.tails,
            )
        return perf.closed_loop(
            c, prompt, output, concurrency, max_num_seqs=max_num_seqs or 256, tails=self.tails
        )

    def exact(self, p: Point) -> Any | None:
        """The newest row for exactly this point, measured rows first."""
        best = None
        for r in self.rows:
            if (r.model_id, r.quantization, r.gpu, r.gpu_count, r.prompt_tokens, r.output_tokens) != (
                p.model_id,
                p.quantization,
                p.gpu,
                p.gpu_count,
                p.prompt_tokens,
                p.output_tokens,
            ):
                continue
            if not (_same(r.concurrency, p.concurrency) and _same(r.request_rate, p.request_rate)):
                continue
            rank = (r.kind == "measured", r.measured_on)
            if best is None or rank > (best.kind == "measured", best.measured_on):
                best = r
        return best

    def predict(self, p: Point, *, use_rows: bool = True, max_num_seqs: float | None = None) -> Prediction:
        """The figures for one point, with where they come from and how sure they are."""
        row = self.exact(p) if use_rows else None
        model, gpu = self.models.get(p.model_id), self.gpus.get(p.gpu)
        if model is None or gpu is None:
            return self._rows_only(p, row)
        lat = self._raw(
            model,
            p.quantization,
            gpu,
            p.gpu_count,
            p.prompt_tokens,
            p.output_tokens,
            p.concurrency,
            p.request_rate,
            max_num_seqs=max_num_seqs,
        )
        pred = self._corrected(p, lat, use_rows)
        if row is not None:
            _overlay(pred, row)
        return pred

    def _corrected(self, p: Point, lat: perf.Latency, use_rows: bool) -> Prediction:
        batch = float(lat.batch[0])
        factors, weight, sources = (
            self.correction(
                p.model_id, p.gpu, p.quantization, p.gpu_count, p.prompt_tokens, p.output_tokens, batch
            )
            if use_rows
            else ({}, 0.0, [])
        )
        f_itl = math.exp(factors.get("itl", 0.0))
        f_ttft = math.exp(factors.get("ttft", 0.0))
        ttft50, ttft95 = float(lat.ttft_p50[0]) * f_ttft, float(lat.ttft_p95[0]) * f_ttft
        itl50, itl95 = float(lat.itl_p50[0]) * f_itl, float(lat.itl_p95[0]) * f_itl
        decode = (p.output_tokens - 1) * itl50
        e2e50 = ttft50 + decode
        e2e95 = ttft95 + decode * self.tails.e2e
        old = float(lat.e2e_p50[0])
        rate = float(lat.requests_per_s[0])
        if p.request_rate is None:  # closed loop: fewer seconds per request, more requests per second
            rate *= old / e2e50 if e2e50 > 0 else 1.0
        saturated = bool(lat.saturated[0])
        if weight >= 1.0:
            confidence, err = "medium", self.expected_error.get("with_neighbours")
        else:
            confidence, err = "low", self.expected_error.get("model_only")
        notes = []
        if saturated:
            notes.append("the load exceeds what this configuration serves: requests queue without bound")
        return Prediction(
            ttft_ms_p50=ttft50 * 1e3,
            ttft_ms_p95=ttft95 * 1e3,
            itl_ms_p50=itl50 * 1e3,
            itl_ms_p95=itl95 * 1e3,
            e2e_ms_p50=e2e50 * 1e3,
            e2e_ms_p95=e2e95 * 1e3,
            output_tokens_per_s=rate * p.output_tokens,
            requests_per_s=rate,
            source="model",
            confidence=confidence,
            expected_error_pct=err,
            batch=batch,
            saturated=saturated,
            rows_used=sources,
            notes=notes,
        )

    def _rows_only(self, p: Point, row: Any | None) -> Prediction:
        same = [
            r
            for r in self.rows
            if (r.model_id, r.quantization, r.gpu, r.gpu_count)
            == (p.model_id, p.quantization, p.gpu, p.gpu_count)
        ]
        if row is not None:
            pred = Prediction(None, None, None, None, None, None, None, None, row.kind, "high", None)
            _overlay(pred, row)
            return pred
        if not same:
            raise LookupError("no catalog entry and no benchmark rows for this model and GPU")
        load = p.concurrency or p.request_rate or 1.0
        pos = np.log2([p.prompt_tokens + 1, p.output_tokens + 1, load])
        weights = []
        for r in same:
            rl = r.concurrency or r.request_rate or 1.0
            d = (np.log2([r.prompt_tokens + 1, r.output_tokens + 1, rl]) - pos) / np.array([1.0, 1.0, 1.0])
            weights.append(math.exp(-0.5 * float(np.sum(d * d))))
        pred = Prediction(None, None, None, None, None, None, None, None, "rows", "low", None)
        for name in (
            "ttft_ms_p50",
            "ttft_ms_p95",
            "itl_ms_p50",
            "itl_ms_p95",
            "e2e_ms_p50",
            "e2e_ms_p95",
            "output_tokens_per_s",
            "requests_per_s",
        ):
            pairs = [
                (w, getattr(r, name))
                for w, r in zip(weights, same, strict=True)
                if getattr(r, name) and w > 0
            ]
            if pairs:
                total = sum(w for w, _ in pairs)
                setattr(pred, name, math.exp(sum(w * math.log(v) for w, v in pairs) / total))
        pred.rows_used = sorted({r.source for r in same})[:3]
        pred.notes.append("no catalog entry for this model or GPU: interpolated between its benchmark rows")
        return pred

    # -- error on held-out rows --------------------------------------------------------------------------

    expected_error: dict[str, float] = {}

    def held_out_error(self) -> dict[str, Any]:
        """Median and mean absolute percentage error on held-out rows: each row left out of the fit and of
        the local correction (`with_neighbours`), and each (model, quantization, GPU, count) group left out
        whole (`model_only`, the error on a configuration nobody benchmarked)."""
        report: dict[str, Any] = {}
        for mode in ("with_neighbours", "model_only"):
            errors: dict[str, list[float]] = defaultdict(list)
            subs: dict[Any, Predictor] = {}  # one fit per held-out group in model_only mode
            for i, o in enumerate(self.obs):
                key = i if mode == "with_neighbours" else o.group
                sub = subs.get(key)
                if sub is None:
                    keep = [
                        x
                        for j, x in enumerate(self.obs)
                        if (j != i if mode == "with_neighbours" else x.group != o.group)
                    ]
                    sub = Predictor.__new__(Predictor)
                    sub.models, sub.gpus, sub.rows, sub.obs = (
                        self.models,
                        self.gpus,
                        [x.row for x in keep],
                        keep,
                    )
                    sub.global_theta, sub.theta = fit_thetas(keep)
                    sub.tails = fit_tails(keep, sub)
                    sub.residuals = sub._residuals(keep)
                    subs[key] = sub
                r = o.row
                point = Point(
                    r.model_id,
                    r.quantization,
                    r.gpu,
                    r.gpu_count,
                    r.prompt_tokens,
                    r.output_tokens,
                    r.concurrency,
                    r.request_rate,
                )
                lat = sub._raw(
                    o.model,
                    r.quantization,
                    o.gpu,
                    r.gpu_count,
                    r.prompt_tokens,
                    r.output_tokens,
                    r.concurrency,
                    r.request_rate,
                )
                pred = sub._corrected(point, lat, True)
                for metric, observed in _observed(r):
                    predicted = getattr(pred, metric)
                    if predicted:
                        errors[metric].append(abs(predicted / observed - 1.0) * 100.0)
            report[mode] = {
                m: {"rows": len(v), "median_pct": float(np.median(v)), "mean_pct": float(np.mean(v))}
                for m, v in sorted(errors.items())
            }
        return report


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a))


def _position(quant: str, count: int, prompt: float, output: float, batch: float) -> np.ndarray:
    # Scales: a factor of ~2.8 in prompt or output, 4 in batch, 2 in GPU count is "one unit away";
    # another quantization is two units away.
    return np.array(
        [
            math.log2(prompt + 1) / 1.5,
            math.log2(output + 1) / 1.5,
            math.log2(max(batch, 1.0)) / 2.0,
            math.log2(max(count, 1)) / 1.0,
            0.0 if quant in ("bf16", "fp16") else (2.0 if quant == "fp8" else 4.0),
        ]
    )


def _observed(row: Any) -> list[tuple[str, float]]:
    names = ("ttft_ms_p50", "itl_ms_p50", "e2e_ms_p50", "output_tokens_per_s")
    return [(n, float(getattr(row, n))) for n in names if getattr(row, n)]


def _pairs(row: Any, lat: perf.Latency) -> list[tuple[str, float, float]]:
    """(metric, observed seconds, model seconds) for the local correction: ITL and TTFT."""
    out = []
    if row.itl_ms_p50:
        out.append(("itl", row.itl_ms_p50 / 1e3, float(lat.itl_p50[0])))
    elif row.output_tokens_per_s and row.concurrency is None and row.request_rate is None:
        # Saturated run: output tokens/s = batch / ITL.
        out.append(("itl", float(lat.batch[0]) / row.output_tokens_per_s, float(lat.itl_p50[0])))
    if row.ttft_ms_p50:
        out.append(("ttft", row.ttft_ms_p50 / 1e3, float(lat.ttft_p50[0])))
    return [(m, o, p) for m, o, p in out if o > 0 and p > 0]


def _overlay(pred: Prediction, row: Any) -> None:
    """An exact row's figures replace the model's; the model fills what the row lacks."""
    for name in (
        "ttft_ms_p50",
        "ttft_ms_p95",
        "itl_ms_p50",
        "itl_ms_p95",
        "e2e_ms_p50",
        "e2e_ms_p95",
        "output_tokens_per_s",
        "requests_per_s",
    ):
        value = getattr(row, name)
        if value is not None:
            setattr(pred, name, float(value))
    if row.requests_per_s is None and row.output_tokens_per_s and row.output_tokens:
        pred.requests_per_s = row.output_tokens_per_s / row.output_tokens
    pred.source = row.kind
    pred.confidence = "high" if row.kind == "measured" else "medium"
    pred.expected_error_pct = None
    pred.rows_used = [row.source]
    given = [n for n in ("ttft_ms_p50", "itl_ms_p50", "e2e_ms_p50", "output_tokens_per_s") if getattr(row, n)]
    pred.notes.append(
        f"{row.kind} at this exact point ({row.source}, {row.measured_on}): "
        f"{', '.join(given)}; other figures from the calibrated model"
    )


# -- fitting ----------------------------------------------------------------------------------------------


def _latency_of(
    obs: list[_Obs], thetas: Sequence[Sequence[float]], tails: Tails = Tails()
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
    obs: list[_Obs], theta: dict[str, tuple[float, ...]], default: tuple[float, ...]
) -> list[tuple[str, np.ndarray, float]]:
    """(gpu, coefficients on θ, target seconds) per observation; queueing offsets use the current θ."""
    if not obs:
        return []
    c, lat = _latency_of(obs, [theta.get(o.gpu.name, default) for o in obs])
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
    obs: list[_Obs], iterations: int = 6
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


def fit_tails(obs: list[_Obs], predictor: Predictor) -> Tails:
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
