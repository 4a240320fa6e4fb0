"""Predictions from the benchmark rows and the analytic model.

Three sources, best first:
1. a row for the exact point (model, quantization, GPU, count, prompt/output tokens, load) is a measurement;
2. the analytic model (`perf`) with per-GPU efficiencies θ fitted on all rows (`fitting`), corrected by the
   residuals of nearby rows of the same model and GPU (nearer in log prompt, output, load and GPU count weighs
   more) — this is how rows the bench adds move the predictions around them;
3. rows only, for hardware the catalog does not describe (a CPU run of the embedded model): the nearest rows.
`accuracy.held_out_error` reports the model's error on rows held out from its calibration.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from hearth.planner import perf
from hearth.planner.catalog import GpuSpec, ModelSpec, same_architecture
from hearth.planner.fitting import (
    SATURATED_MAX_SEQS,
    SATURATED_MEMORY_FRACTION,
    Observation,
    configs_for,
    fit,
    fit_tails,
    is_offline,
    latency_at,
)
from hearth.planner.perf import Configs

__all__ = ["Point", "Prediction", "Predictor", "configs_for"]


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
    engine: str = "vllm"  # vllm | tensorrt-llm: how the engine sizes its KV cache


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
    # Mean held-out error per metric (TTFT, ITL, output tokens/s) of this kind of prediction, and which
    # hold-out it comes from (leave one row / configuration / source out).
    expected_error_by_metric: dict[str, float] = field(default_factory=dict)
    error_basis: str | None = None
    saturated: bool = False
    rows_used: list[str] = field(default_factory=list)  # sources of the rows behind the figure
    notes: list[str] = field(default_factory=list)


class Predictor:
    """Calibrated on a set of rows; answers predictions for points and arrays of configurations."""

    def __init__(self, models: Iterable[ModelSpec], gpus: Iterable[GpuSpec], rows: Iterable[Any]) -> None:
        self.models = {m.id: m for m in models}
        self.gpus = {g.name: g for g in gpus}
        self.rows = list(rows)
        # Rows of a checkpoint outside the catalog whose architecture a catalog model shares describe it.
        self.twins = twins = {k: self.models[v] for k, v in same_architecture().items() if v in self.models}
        self.obs = [
            Observation(
                r,
                self.models.get(r.model_id) or twins[r.model_id],
                self.gpus[r.gpu],
                (r.model_id, r.quantization, r.gpu, r.gpu_count),
            )
            for r in self.rows
            if (r.model_id in self.models or r.model_id in twins)
            and r.gpu in self.gpus
            and r.quantization in perf.QUANTIZATIONS
            and r.gpu_count >= 1
        ]
        self._calibrate(self.obs)

    @classmethod
    def on_observations(
        cls, models: dict[str, ModelSpec], gpus: dict[str, GpuSpec], obs: list[Observation]
    ) -> Predictor:
        """A predictor calibrated on some observations only (a fit with rows held out)."""
        predictor = cls.__new__(cls)
        predictor.models, predictor.gpus, predictor.rows, predictor.obs = (
            models,
            gpus,
            [o.row for o in obs],
            obs,
        )
        predictor.twins = {k: models[v] for k, v in same_architecture().items() if v in models}
        predictor._calibrate(obs)
        return predictor

    def _calibrate(self, obs: list[Observation]) -> None:
        result = fit(obs)
        self.global_theta, self.theta, self.kv_scale = result.global_theta, result.per_gpu, result.kv_scale
        self.tails = fit_tails(obs)
        self.residuals = self._residuals(obs)
        # Which publications calibrated what: θ of a GPU comes from its rows, the global θ from all of them.
        by_gpu: dict[str, set[str]] = defaultdict(set)
        for o in obs:
            by_gpu[o.gpu.name].add(o.row.source)
        self.sources_by_gpu = {g: sorted(s) for g, s in by_gpu.items()}
        self.sources_all = sorted({o.row.source for o in obs})
        # Held-out error per kind of prediction and metric, set by whoever computed it
        # (accuracy.expected_error).
        self.expected_error: dict[str, dict[str, float]] = {}

    # -- θ per GPU ----------------------------------------------------------------------------------------

    def theta_for(self, gpu: str) -> tuple[float, ...]:
        return self.theta.get(gpu, self.global_theta)

    def configs(
        self,
        models: Sequence[ModelSpec],
        quants: Sequence[str],
        gpus: Sequence[GpuSpec],
        tps: Sequence[int],
        engines: Sequence[str] | None = None,
    ) -> Configs:
        return configs_for(
            models, quants, gpus, tps, [self.theta_for(g.name) for g in gpus], self.kv_scale, engines
        )

    def catalog_id(self, model_id: str) -> str:
        """The catalog model whose performance `model_id` has: itself, or its same-architecture twin."""
        twin = self.twins.get(model_id)
        return twin.id if twin is not None and model_id not in self.models else model_id

    def calibration_sources(self, gpu: str) -> list[str]:
        """The sources whose rows set the efficiencies a prediction on `gpu` uses."""
        return self.sources_by_gpu.get(gpu) or self.sources_all

    # -- residuals of rows against the model -------------------------------------------------------------

    def _residuals(
        self, obs: list[Observation]
    ) -> dict[tuple[str, str], list[tuple[np.ndarray, str, float, str]]]:
        """(model, gpu) → [(position, metric, log(observed / model), source)] for the local correction."""
        out: dict[tuple[str, str], list[tuple[np.ndarray, str, float, str]]] = defaultdict(list)
        # Offline rows (every request queued at once) only inform the ceiling through the fit: a
        # maximum-throughput run of another engine release is no neighbour of a point under online load
        # (measured: letting them correct online predictions worsened the held-out output tokens/s error).
        obs = [o for o in obs if not is_offline(o.row)]
        if not obs:
            return out
        _, lat = latency_at(obs, [self.theta_for(o.gpu.name) for o in obs], self.tails, self.kv_scale)
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
        arrays = self._residual_arrays().get((model_id, gpu))
        if arrays is None:
            return {}, 0.0, []
        where, is_itl, resid = arrays
        sources = self._residual_sources[(model_id, gpu)]
        pos = _position(quantization, gpu_count, prompt, output, batch)
        w = np.exp(-0.5 * np.square(where - pos).sum(axis=1))  # vectorised: hundreds of rows per sweep
        w[w < 1e-3] = 0.0
        factors: dict[str, float] = {}
        for metric, mask in (("itl", is_itl), ("ttft", ~is_itl)):
            if w[mask].any():
                # Shrink toward the model when the neighbours are few or far (0.3: one row at ~1.5 halves).
                factors[metric] = float(w[mask] @ resid[mask]) / (float(w[mask].sum()) + 0.3)
        nearest: dict[str, float] = {}
        for i in np.flatnonzero(w):
            nearest[sources[i]] = max(nearest.get(sources[i], 0.0), float(w[i]))
        return factors, float(w.sum()), sorted(nearest, key=lambda s: -nearest[s])[:3]

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
            self._residual_sources = {key: [e[3] for e in entries] for key, entries in self.residuals.items()}
            self._arrays = cached
        return cached

    # -- predictions -------------------------------------------------------------------------------------

    def model_latency(
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
        engine: str = "vllm",
    ) -> perf.Latency:
        """The calibrated analytic model's figures for one configuration at one load (no row corrections)."""
        c = self.configs([model], [quant], [gpu], [count], [engine])
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
        model, gpu = self.models.get(p.model_id) or self.twins.get(p.model_id), self.gpus.get(p.gpu)
        if model is None or gpu is None:
            return self._rows_only(p, row)
        lat = self.model_latency(
            model,
            p.quantization,
            gpu,
            p.gpu_count,
            p.prompt_tokens,
            p.output_tokens,
            p.concurrency,
            p.request_rate,
            max_num_seqs=max_num_seqs,
            engine=p.engine,
        )
        pred = self.corrected(p, lat, use_rows)
        if row is not None:
            _overlay(pred, row)
        return pred

    def corrected(self, p: Point, lat: perf.Latency, use_rows: bool) -> Prediction:
        """`lat` corrected by nearby rows' residuals (when `use_rows`): a prediction with its sources."""
        batch = float(lat.batch[0])
        factors, weight, sources = (
            self.correction(
                self.catalog_id(p.model_id),
                p.gpu,
                p.quantization,
                p.gpu_count,
                p.prompt_tokens,
                p.output_tokens,
                batch,
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
            confidence, basis = "medium", "leave_one_row_out"
        elif p.gpu in self.sources_by_gpu:
            confidence, basis = "low", "leave_one_configuration_out"
        else:
            confidence, basis = "low", "leave_one_source_out"
        by_metric = dict(self.expected_error.get(basis, {}))
        err = round(max(by_metric.values()), 1) if by_metric else None
        # Truthful provenance: the nearby rows that corrected the figure, then every source that calibrated
        # the efficiencies used here (this GPU's rows, or all rows when the GPU has none).
        used = list(sources)
        used += [s for s in self.calibration_sources(p.gpu) if s not in used]
        notes = []
        if p.gpu not in self.sources_by_gpu:
            notes.append(f"no benchmark rows on {p.gpu}: efficiencies from the fit over all GPUs' rows")
        if saturated:
            notes.append(
                "the clients exceed the batch this configuration holds: the rest wait for a slot "
                "(TTFT grows by whole request times)"
            )
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
            rows_used=used,
            notes=notes,
            expected_error_by_metric=by_metric,
            error_basis=basis,
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
    pred.expected_error_by_metric = {}
    pred.error_basis = None
    pred.rows_used = [row.source]
    given = [n for n in ("ttft_ms_p50", "itl_ms_p50", "e2e_ms_p50", "output_tokens_per_s") if getattr(row, n)]
    pred.notes.append(
        f"{row.kind} at this exact point ({row.source}, {row.measured_on}): "
        f"{', '.join(given)}; other figures from the calibrated model"
    )
