"""GuideLLM reports (`benchmarks.json`, report format version 2 of guidellm 0.8) as planner benchmark rows.

Per benchmark the report holds `config.strategy` ({"type_": "constant", "rate": …} or "concurrent" with
"streams"…) and `metrics.<name>.successful` distributions with `mean` and `percentiles.p50…p99`. TTFT and ITL
are in milliseconds, `request_latency` in seconds; `requests_per_second` and `output_tokens_per_second` are
rate distributions whose mean is the benchmark's rate.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from hearth.bench.schemas import BenchConfig, BenchReport
from hearth.planner.schemas import BenchmarkRowIn
from hearth.platform.errors import bad_request


def labels(
    *,
    model_id: str | None = None,
    quantization: str = "fp16",
    gpu: str = "cpu",
    gpu_count: int = 1,
    hardware_label: str | None = None,
) -> dict[str, Any]:
    """Row fields a report cannot know (catalog model id, quantization, hardware), for runs and imports."""
    return {
        "model_id": model_id,
        "quantization": quantization,
        "gpu": gpu,
        "gpu_count": gpu_count,
        "hardware_label": hardware_label,
    }


def rows_from_report(report: BenchReport, *, row_labels: dict[str, Any]) -> list[BenchmarkRowIn]:
    """One measured row per load point of a Hearth run that had successful requests."""
    config = BenchConfig.model_validate({**report.config, "api_key": None})
    model_id = row_labels.get("model_id") or config.model
    measured_on = datetime.fromisoformat(report.started_at).date()
    rows = []
    for b in report.benchmarks:
        if b.successful == 0:
            continue
        s = b.strategy
        rows.append(
            BenchmarkRowIn(
                **{**row_labels, "model_id": model_id},
                prompt_tokens=round(b.prompt_tokens.mean or config.prompt_tokens),
                output_tokens=round(b.output_tokens.mean or config.output_tokens),
                concurrency=_concurrency(s.type, s.streams, b.concurrency),
                request_rate=s.rate if s.type in ("constant", "poisson") else None,
                ttft_ms_p50=b.ttft_ms.p50,
                ttft_ms_p95=b.ttft_ms.p95,
                ttft_ms_p99=b.ttft_ms.p99,
                itl_ms_p50=b.itl_ms.p50,
                itl_ms_p95=b.itl_ms.p95,
                itl_ms_p99=b.itl_ms.p99,
                e2e_ms_p50=b.e2e_ms.p50,
                e2e_ms_p95=b.e2e_ms.p95,
                e2e_ms_p99=b.e2e_ms.p99,
                requests_per_s=b.requests_per_s,
                output_tokens_per_s=b.output_tokens_per_s,
                source=f"hearth bench run {report.run_id} ({s.label})",
                measured_on=measured_on,
                kind="measured",
                endpoint=config.base_url,
            )
        )
    return rows


def _concurrency(kind: str, streams: int | None, measured: float) -> float | None:
    if kind == "synchronous":
        return 1.0
    if kind == "concurrent":
        return float(streams or 1)
    if kind == "throughput":
        return max(measured, 1e-6)  # the concurrency it reached, not the cap
    return None


def rows_from_guidellm(report: Any, *, row_labels: dict[str, Any], source: str) -> list[BenchmarkRowIn]:
    """One measured row per benchmark of a GuideLLM report; a malformed report is a 400, nothing stored."""
    if not isinstance(report, dict) or not isinstance(report.get("benchmarks"), list):
        raise bad_request('not a GuideLLM report: expected a JSON object with a "benchmarks" list')
    if not report["benchmarks"]:
        raise bad_request("the GuideLLM report holds no benchmarks")
    scenario = report.get("config") or {}
    # guidellm 0.8 keeps the backend under config.spec.backend; 0.3–0.4 had config.target / config.model.
    backend = ((scenario.get("spec") or {}).get("backend") or {}) if isinstance(scenario, dict) else {}
    model_id = row_labels.get("model_id") or backend.get("model") or scenario.get("model")
    target = backend.get("target") or scenario.get("target")
    rows = []
    for number, bench in enumerate(report["benchmarks"], 1):
        where = f"benchmark {number}"
        try:
            config, metrics = bench["config"], bench["metrics"]
            strategy = config["strategy"]
            kind = strategy["type_"]
        except (KeyError, TypeError):
            raise bad_request(f"{where}: missing config.strategy.type_ or metrics") from None
        model = (
            model_id
            or (config.get("backend") or {}).get("model")
            or (config.get("requests") or {}).get("model")
        )
        if not model:
            raise bad_request("the report names no model: pass model_id (--model-id)")
        ttft = _dist(metrics, "time_to_first_token_ms", where)
        itl = _dist(metrics, "inter_token_latency_ms", where)
        e2e = _dist(metrics, "request_latency", where)
        if ttft.get("count", 0) == 0 and e2e.get("count", 0) == 0:
            continue  # no successful request in this benchmark: nothing measured to store
        rate_mean = _dist(metrics, "requests_per_second", where).get("mean")
        concurrency_mean = _dist(metrics, "request_concurrency", where).get("mean")
        rows.append(
            BenchmarkRowIn(
                **{**row_labels, "model_id": model},
                prompt_tokens=round(_dist(metrics, "prompt_token_count", where).get("mean") or 0),
                output_tokens=round(_dist(metrics, "output_token_count", where).get("mean") or 0),
                concurrency=_concurrency(kind, strategy.get("streams"), concurrency_mean or 0.0),
                request_rate=strategy.get("rate") if kind in ("constant", "poisson") else None,
                ttft_ms_p50=_pct(ttft, "p50"),
                ttft_ms_p95=_pct(ttft, "p95"),
                ttft_ms_p99=_pct(ttft, "p99"),
                itl_ms_p50=_pct(itl, "p50"),
                itl_ms_p95=_pct(itl, "p95"),
                itl_ms_p99=_pct(itl, "p99"),
                e2e_ms_p50=_pct(e2e, "p50", scale=1000.0),
                e2e_ms_p95=_pct(e2e, "p95", scale=1000.0),
                e2e_ms_p99=_pct(e2e, "p99", scale=1000.0),
                requests_per_s=rate_mean,
                output_tokens_per_s=_dist(metrics, "output_tokens_per_second", where).get("mean"),
                source=f"{source} (GuideLLM {kind}{_at(strategy)})",
                measured_on=_date(bench, report),
                kind="measured",
                endpoint=target,
            )
        )
    if not rows:
        raise bad_request("the GuideLLM report has no benchmark with successful requests")
    return rows


def _dist(metrics: dict, name: str, where: str) -> dict:
    try:
        value = metrics[name]["successful"]
    except (KeyError, TypeError):
        raise bad_request(f"{where}: metrics.{name}.successful is missing") from None
    if not isinstance(value, dict):
        raise bad_request(f"{where}: metrics.{name}.successful is not a distribution")
    return value


def _pct(dist: dict, name: str, *, scale: float = 1.0) -> float | None:
    if not dist.get("count"):
        return None
    value = (dist.get("percentiles") or {}).get(name)
    return None if value is None else float(value) * scale


def _at(strategy: dict) -> str:
    if strategy.get("rate") is not None:
        return f"@{strategy['rate']:.3g}/s"
    if strategy.get("streams") is not None:
        return f"@{strategy['streams']}"
    return ""


def _date(bench: dict, report: dict) -> date:
    start = (bench.get("scheduler_state") or {}).get("start_time")
    if isinstance(start, int | float) and start > 0:
        return datetime.fromtimestamp(start, UTC).date()
    return datetime.now(UTC).date()
