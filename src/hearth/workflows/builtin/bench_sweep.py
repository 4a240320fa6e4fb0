"""Built-in pipeline `bench-sweep`: `hearth bench`'s sweep against an OpenAI-compatible endpoint (a Hearth
alias through a Hearth server's /v1, or any URL) → measured rows in the planner's knowledge base, and the
run's report as artifacts (JSON, CSV, PNG).

The load generator is the bench context's runner; rows are saved through the planner's `BenchmarkSink`
port (so the save announces itself with `BenchmarkRowsAdded`), exactly as `hearth bench run --save` does."""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from hearth.planner.ports import BENCHMARKS
from hearth.workflows.pipeline import Param, Pipeline, StepContext

pipeline = Pipeline(
    "bench-sweep",
    version="1",
    description="Sweep an endpoint's load (synchronous → throughput); save the measurements for the planner.",
    params={
        "target": Param(str, help="base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1"),
        "model": Param(str, help="the model (alias) sent in each request"),
        "api_key_env": Param(
            str, default="", help="name of an environment variable of the server holding the key"
        ),
        "requests": Param(int, default=20, help="requests per load point"),
        "sweep_size": Param(int, default=4, help="load points: synchronous, throughput and rates between"),
        "max_concurrency": Param(int, default=16, help="requests in flight at the throughput point"),
        "prompt_tokens": Param(int, default=64),
        "output_tokens": Param(int, default=16),
        "gpu": Param(str, default="cpu", help="hardware label of the rows (a catalogue GPU name, or cpu)"),
        "gpu_count": Param(int, default=1),
        "save": Param(bool, default=True, help="store the rows in the planner's knowledge base"),
    },
    metrics={"sync_ttft_ms_p50": "min", "max_output_tokens_per_s": "max", "max_requests_per_s": "max"},
    # Its rows go into the knowledge base every user's plans read, and it sends load to any URL it is given:
    # admins only, as `POST /api/bench/import` is.
    admin_only=True,
)


def _config(params: dict[str, Any]) -> Any:
    from hearth.bench.schemas import BenchConfig

    key = os.environ.get(params["api_key_env"]) if params["api_key_env"] else None
    try:
        return BenchConfig(
            target=params["target"],
            model=params["model"],
            api_key=key,
            mode="sweep",
            sweep_size=params["sweep_size"],
            max_concurrency=params["max_concurrency"],
            max_requests=params["requests"],
            prompt_tokens=params["prompt_tokens"],
            output_tokens=params["output_tokens"],
            max_error_rate=0.5,
            request_timeout=120,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc'])) or 'params'}: {first['msg']}") from None


@pipeline.step(
    outputs={"load_points": int},
    artifacts={"report.json": "report"},
    timeout=3600,
)
async def sweep(ctx: StepContext) -> dict[str, Any]:
    """Run the sweep (bench's runner) and keep its report."""
    from hearth.bench.service import run_benchmark

    config = _config(ctx.params)
    ctx.log(
        f"sweeping {config.target} ({config.model}): {config.sweep_size} load points × "
        f"{config.max_requests} requests"
    )

    def finished(result: Any) -> None:
        ctx.log(
            f"{result.strategy.label}: {result.requests_per_s:.2f} req/s, "
            f"{result.output_tokens_per_s:.1f} out tok/s, "
            f"TTFT p50 {result.ttft_ms.p50 or 0:.1f} ms, {result.successful} ok / {result.errored} errors"
        )

    report = await run_benchmark(config=config, on_result=finished)
    ctx.artifact_path("report.json").write_text(report.model_dump_json(indent=2))
    points = [b for b in report.benchmarks if b.successful]
    if not points:
        raise RuntimeError("no request of the sweep succeeded; is the endpoint serving that model?")
    ctx.metric("sync_ttft_ms_p50", points[0].ttft_ms.p50 or 0.0)
    ctx.metric("max_output_tokens_per_s", max(b.output_tokens_per_s for b in points))
    ctx.metric("max_requests_per_s", max(b.requests_per_s for b in points))
    return {"load_points": len(report.benchmarks)}


@pipeline.step(after=[sweep], outputs={"rows": int})
async def save(ctx: StepContext) -> dict[str, Any]:
    """Store one measured row per load point in the planner's knowledge base."""
    from hearth.bench.guidellm import labels, rows_from_report
    from hearth.bench.schemas import BenchReport

    if not ctx.params["save"]:
        ctx.log("save=false: nothing stored")
        return {"rows": 0}
    sink = ctx.ports.find(BENCHMARKS) if ctx.ports is not None else None
    if sink is None:
        raise RuntimeError("the planner context is not running in this server: no knowledge base to save to")
    report = BenchReport.model_validate_json(ctx.input_path("sweep.report.json").read_text())
    rows = rows_from_report(
        report,
        row_labels=labels(
            gpu=ctx.params["gpu"], gpu_count=ctx.params["gpu_count"], hardware_label=ctx.params["gpu"]
        ),
    )
    if not rows:
        raise RuntimeError("the report has no load point with a successful request")
    count = await sink.add_benchmark_rows(rows)
    ctx.log(f"saved {count} rows to the planner's knowledge base")
    return {"rows": count}


@pipeline.step(after=[sweep], artifacts={"report.csv": "report", "report.png": "report"})
def charts(ctx: StepContext) -> None:
    """The report as CSV (one line per load point) and PNG (latency distributions and load curves)."""
    from hearth.bench.outputs import write_csv, write_png
    from hearth.bench.schemas import BenchReport

    report = BenchReport.model_validate_json(ctx.input_path("sweep.report.json").read_text())
    write_csv(report, ctx.artifact_path("report.csv"))
    write_png(report, ctx.artifact_path("report.png"))
    print(f"wrote the CSV and the PNG of {len(report.benchmarks)} load points")
