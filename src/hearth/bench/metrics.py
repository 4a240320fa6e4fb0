"""Summaries of one benchmark's request records, with GuideLLM's definitions (see `hearth.bench.schemas`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from hearth.bench.schemas import BenchmarkResult, Distribution, RequestRecord, Samples, Strategy

MAX_SAMPLES = 2000  # per-request values kept per metric in the report, for the plots
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


def distribution(values: Sequence[float], weights: Sequence[float] | None = None) -> Distribution:
    """Mean, min, max and percentiles; a percentile is the first value whose cumulative weight reaches it,
    as GuideLLM computes it (`Percentiles.from_pdf`), so both tools read the same sample the same way."""
    if not values:
        return Distribution()
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    if keep.any():
        v, w = v[keep], w[keep]
    else:
        w = np.ones_like(v)  # all weights zero: GuideLLM falls back to a uniform distribution too
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cdf = np.cumsum(w) / w.sum()
    picks = {
        name: float(v[min(len(v) - 1, int(np.searchsorted(cdf, p - 1e-12, side="left")))])
        for name, p in PERCENTILES.items()
    }
    return Distribution(
        count=len(values), mean=float(np.dot(v, w) / w.sum()), min=float(v[0]), max=float(v[-1]), **picks
    )


def summarize(records: list[RequestRecord], *, strategy: Strategy, stopped_by: str) -> BenchmarkResult:
    """The figures of one load point from its records; warm-up requests are left out of every figure."""
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.status == "successful"]
    errored = [r for r in measured if r.status == "errored"]
    incomplete = [r for r in measured if r.status == "incomplete"]
    if measured:
        window_start = min(r.start for r in measured)
        duration = max(max(r.end for r in measured) - window_start, 1e-9)
    else:
        duration = 0.0
    ttft = [(r.ttft_ms, 1.0) for r in ok if r.ttft_ms is not None]
    itl = [(r.itl_ms, r.output_tokens - 1) for r in ok if r.itl_ms is not None]
    tpot = [(r.tpot_ms, r.output_tokens) for r in ok if r.tpot_ms is not None]
    out_tokens = sum(r.output_tokens for r in ok)
    all_tokens = out_tokens + sum(r.prompt_tokens for r in ok)
    finished = len(ok) + len(errored)
    return BenchmarkResult(
        strategy=strategy,
        duration_s=duration,
        successful=len(ok),
        errored=len(errored),
        incomplete=len(incomplete),
        warmup=len(records) - len(measured),
        stopped_by=stopped_by,
        ttft_ms=distribution(*_split(ttft)),
        itl_ms=distribution(*_split(itl)),
        tpot_ms=distribution(*_split(tpot)),
        e2e_ms=distribution([1000 * r.latency for r in ok]),
        prompt_tokens=distribution([r.prompt_tokens for r in ok]),
        output_tokens=distribution([r.output_tokens for r in ok]),
        requests_per_s=len(ok) / duration if duration else 0.0,
        output_tokens_per_s=out_tokens / duration if duration else 0.0,
        total_tokens_per_s=all_tokens / duration if duration else 0.0,
        # Little's law: the time-averaged number in flight is the sum of their latencies over the window.
        concurrency=sum(r.latency for r in measured) / duration if duration else 0.0,
        error_rate=len(errored) / finished if finished else 0.0,
        errors=dict(Counter(r.error or "error" for r in errored).most_common(5)),
        samples=Samples(
            ttft_ms=_sample([v for v, _ in ttft]),
            itl_ms=_sample([v for v, _ in itl]),
            e2e_ms=_sample([1000 * r.latency for r in ok]),
        ),
    )


def _sample(values: list[float]) -> list[float]:
    """At most MAX_SAMPLES values, evenly spaced through the run (keeps the report small), rounded to µs."""
    step = max(1, -(-len(values) // MAX_SAMPLES))
    return [round(v, 3) for v in values[::step]]


def _split(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in pairs], [p[1] for p in pairs]
