"""The performance model's error on benchmark rows held out from its calibration: reported by the calibration
route and the planner bench, and attached to predictions as their expected error."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

import numpy as np

from hearth.planner.predictor import Point, Predictor
from hearth.planner.schemas import BenchmarkRowIn

_ROW_FIELDS = tuple(BenchmarkRowIn.model_fields)
_OBSERVED = ("ttft_ms_p50", "itl_ms_p50", "e2e_ms_p50", "output_tokens_per_s")
_ERROR_CACHE: dict[str, dict[str, float]] = {}


def held_out_error(predictor: Predictor) -> dict[str, Any]:
    """Median and mean absolute percentage error on held-out rows: each row left out of the fit and of the
    local correction (`with_neighbours`), and each (model, quantization, GPU, count) group left out whole
    (`model_only`, the error on a configuration nobody benchmarked)."""
    report: dict[str, Any] = {}
    for mode in ("with_neighbours", "model_only"):
        errors: dict[str, list[float]] = defaultdict(list)
        subs: dict[Any, Predictor] = {}  # one fit per held-out group in model_only mode
        for i, o in enumerate(predictor.obs):
            key = i if mode == "with_neighbours" else o.group
            sub = subs.get(key)
            if sub is None:
                keep = [
                    x
                    for j, x in enumerate(predictor.obs)
                    if (j != i if mode == "with_neighbours" else x.group != o.group)
                ]
                sub = subs[key] = Predictor.on_observations(predictor.models, predictor.gpus, keep)
            r = o.row
            load = (r.concurrency, r.request_rate)
            point = Point(
                r.model_id, r.quantization, r.gpu, r.gpu_count, r.prompt_tokens, r.output_tokens, *load
            )
            lat = sub.model_latency(
                o.model, r.quantization, o.gpu, r.gpu_count, r.prompt_tokens, r.output_tokens, *load
            )
            pred = sub.corrected(point, lat, True)
            for metric in _OBSERVED:
                observed, predicted = getattr(r, metric), getattr(pred, metric)
                if observed and predicted:
                    errors[metric].append(abs(predicted / float(observed) - 1.0) * 100.0)
        report[mode] = {
            m: {"rows": len(v), "median_pct": float(np.median(v)), "mean_pct": float(np.mean(v))}
            for m, v in sorted(errors.items())
        }
    return report


def expected_error(predictor: Predictor) -> dict[str, float]:
    """Median held-out error of ITL-type predictions (the figure that sizes the plan), per kind; cached per
    distinct set of rows, since every process starts from the same seed rows."""
    text = sorted(json.dumps({k: getattr(r, k) for k in _ROW_FIELDS}, default=str) for r in predictor.rows)
    key = hashlib.sha256("\n".join(text).encode()).hexdigest()
    if key in _ERROR_CACHE:
        return _ERROR_CACHE[key]
    report = held_out_error(predictor)
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
