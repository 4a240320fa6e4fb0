"""The performance model's error on online benchmark rows held out from its calibration: reported by the
calibration route, `hearth plan calibrate` and the planner bench, and attached to predictions as their
expected error.

Three hold-outs, each judged on the online rows only (offline rows inform the ceiling, not the verdict):
- leave one source out: every publication's rows left out of the fit at once (and of the local correction),
  then predicted: the error on an engine, lab and method the planner has never seen;
- leave one configuration out: every (model, quantization, GPU, count) group left out at once: the error on a
  configuration nobody benchmarked, the other rows of its source still calibrating;
- leave one row out: a single point left out, its sweep still correcting it (predictions near measured rows).
Errors are mean absolute percentage errors (MAPE) per metric, with the median beside them, overall and per
source."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import fields
from typing import Any

import numpy as np

from hearth.planner import perf
from hearth.planner.fitting import Observation, engine_kind, is_offline, latency_at
from hearth.planner.predictor import Point, Predictor
from hearth.planner.schemas import BenchmarkRowIn

_ROW_FIELDS = tuple(BenchmarkRowIn.model_fields)
# The metrics judged, and the prediction attribute each is compared with.
METRICS = {
    "ttft_ms_p50": "ttft_ms_p50",
    "itl_ms_p50": "itl_ms_p50",
    "output_tokens_per_s": "output_tokens_per_s",
}
HOLD_OUTS: dict[str, Callable[[int, Observation], Hashable]] = {
    "leave_one_source_out": lambda i, o: o.row.source,
    "leave_one_configuration_out": lambda i, o: o.group,
    # A row is its measured point: repeated measurements of one point go out together (neither leaks into
    # the other's prediction), and the folds do not depend on the order the rows were read in.
    "leave_one_row_out": lambda i, o: (
        o.row.source,
        *o.group,
        o.row.prompt_tokens,
        o.row.output_tokens,
        o.row.concurrency,
        o.row.request_rate,
    ),
}
# At most this many refits per hold-out: beyond it, the held-out units (configurations, rows) are dealt
# round-robin into this many folds and each fold is left out at once — a stricter test (more is missing from
# each fit) that keeps the report to seconds with hundreds of rows. Sources are never merged.
MAX_FOLDS = {"leave_one_configuration_out": 12, "leave_one_row_out": 10}
_ERROR_CACHE: dict[str, dict[str, dict[str, float]]] = {}


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "rows": len(values),
        "mape_pct": round(float(np.mean(values)), 1),
        "median_pct": round(float(np.median(values)), 1),
    }


def held_out_error(predictor: Predictor) -> dict[str, Any]:
    """Per hold-out: MAPE (and median) per metric over all online rows, and per source."""
    report: dict[str, Any] = {}
    online = [(i, o) for i, o in enumerate(predictor.obs) if not is_offline(o.row)]
    for name, unit_of in HOLD_OUTS.items():
        key_of = _folded(unit_of, online, MAX_FOLDS.get(name))
        errors: dict[str, list[float]] = defaultdict(list)
        by_source: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        groups: dict[Hashable, list[Observation]] = defaultdict(list)
        for i, o in online:
            groups[key_of(i, o)].append(o)
        for key, held in groups.items():
            keep = [x for j, x in enumerate(predictor.obs) if key_of(j, x) != key]
            sub = Predictor.on_observations(predictor.models, predictor.gpus, keep)
            # The held-out rows' model figures in one vectorised call (as `Predictor.model_latency` each).
            _, lat = latency_at(held, [sub.theta_for(o.gpu.name) for o in held], sub.tails, sub.kv_scale)
            for k, o in enumerate(held):
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
                    engine_kind(getattr(r, "engine", None)),
                )
                one = perf.Latency(**{f.name: getattr(lat, f.name)[k : k + 1] for f in fields(lat)})
                pred = sub.corrected(point, one, True)
                for metric, attr in METRICS.items():
                    observed, predicted = getattr(r, metric), getattr(pred, attr)
                    if observed and predicted:
                        e = abs(predicted / float(observed) - 1.0) * 100.0
                        errors[metric].append(e)
                        by_source[r.source][metric].append(e)
        report[name] = {
            "overall": {m: _summary(v) for m, v in sorted(errors.items())},
            "per_source": {
                s: {m: _summary(v) for m, v in sorted(ms.items())} for s, ms in sorted(by_source.items())
            },
        }
    return report


def _folded(
    unit_of: Callable[[int, Observation], Hashable], online: list[tuple[int, Observation]], folds: int | None
) -> Callable[[int, Observation], Hashable]:
    """`unit_of`, or the fold of its unit when the online rows have more units than `folds`. Offline rows
    (never judged) keep their own unit, so they stay in every fit unless their configuration is held out."""
    units = sorted({unit_of(i, o) for i, o in online}, key=str)
    if folds is None or len(units) <= folds:
        return unit_of
    fold = {u: k % folds for k, u in enumerate(units)}
    return lambda i, o: fold.get(unit_of(i, o), unit_of(i, o))


def expected_error(predictor: Predictor) -> dict[str, dict[str, float]]:
    """MAPE per metric per hold-out (what `Predictor.corrected` attaches to its answers); cached per distinct
    set of rows, since every process starts from the same seed rows."""
    text = sorted(json.dumps({k: getattr(r, k) for k in _ROW_FIELDS}, default=str) for r in predictor.rows)
    key = hashlib.sha256("\n".join(text).encode()).hexdigest()
    if key in _ERROR_CACHE:
        return _ERROR_CACHE[key]
    report = held_out_error(predictor)
    out = {name: {m: s["mape_pct"] for m, s in part["overall"].items()} for name, part in report.items()}
    _ERROR_CACHE[key] = out
    return out
