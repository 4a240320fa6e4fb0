"""`hearth bench run` drives an OpenAI-compatible endpoint and saves what it measured as the planner's
benchmark rows; `hearth bench import` stores a GuideLLM report the same way."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import typer
import uvloop
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hearth.bench import service
from hearth.bench.guidellm import labels, rows_from_guidellm, rows_from_report
from hearth.bench.outputs import console_table, write_outputs
from hearth.bench.runner import BenchmarkState
from hearth.bench.schemas import BenchConfig, BenchmarkResult
from hearth.cli.main import app
from hearth.config import Settings
from hearth.planner.schemas import BenchmarkRowIn
from hearth.platform.errors import HearthError

bench_app = typer.Typer(help="Benchmark OpenAI-compatible endpoints; feed the planner measured rows.")
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True)

MODEL_ID = typer.Option(None, "--model-id", help="Hugging Face id for the rows (default: --model).")
QUANT = typer.Option("fp16", "--quantization", help="Quantization of the served model, for the rows.")
GPU = typer.Option("cpu", "--gpu", help="GPU profile name, e.g. H100-80GB ('cpu' for CPU serving).")
GPU_COUNT = typer.Option(1, "--gpu-count", min=0, help="GPUs serving the model.")
HW = typer.Option(None, "--hardware-label", help="Free text about the hardware, stored with the rows.")


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else first["msg"].removeprefix("Value error, ")


async def _save(rows: list[BenchmarkRowIn]) -> int:
    """Save through the same sink as the server, so the rows reach the outbox's `BenchmarkRowsAdded` too (the
    server's bus delivers it)."""
    from hearth.events.bus import EventBus
    from hearth.planner.service import PlannerService
    from hearth.platform.db import Database
    from hearth.platform.migrate import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    db = Database(settings.resolved_database_url)
    try:
        sink = PlannerService(db=db, bus=EventBus(db), settings=settings)
        return await service.BenchService(sink=sink).save_rows(rows=rows)
    finally:
        await db.close()


@bench_app.command("run")
def run(
    target: str = typer.Option(..., "--target", help="Base URL of the OpenAI API, e.g. http://host:8000/v1."),
    model: str = typer.Option(
        ..., "--model", help="Model name to request (a Hearth alias or the server's id)."
    ),
    mode: str = typer.Option(
        "synchronous", "--mode", help="synchronous | concurrent | throughput | constant | poisson | sweep."
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Streams (concurrent mode)."),
    rate: float | None = typer.Option(None, "--rate", help="Requests per second (constant, poisson)."),
    sweep_size: int = typer.Option(10, "--sweep-size", help="Benchmarks in a sweep."),
    max_concurrency: int = typer.Option(256, "--max-concurrency", help="Cap in flight (throughput, sweep)."),
    prompt_tokens: int = typer.Option(256, "--prompt-tokens", help="Synthetic prompt length in tokens."),
    output_tokens: int = typer.Option(128, "--output-tokens", help="max_tokens asked for each request."),
    dataset: Path | None = typer.Option(None, "--dataset", help="A .jsonl or .csv of prompts instead."),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="tokenizer.json or .gguf (default SmolLM2)."
    ),
    duration: float | None = typer.Option(None, "--duration", help="Seconds per benchmark (after warm-up)."),
    requests: int | None = typer.Option(None, "--requests", help="Requests per benchmark (after warm-up)."),
    max_error_rate: float | None = typer.Option(None, "--max-error-rate", help="Stop above this (0-1)."),
    warmup: int = typer.Option(0, "--warmup", help="Requests sent first and left out of the figures."),
    endpoint_kind: str = typer.Option("chat", "--endpoint", help="chat (chat/completions) or completions."),
    ignore_eos: bool = typer.Option(
        True, "--ignore-eos/--no-ignore-eos", help="Ask for exact output length."
    ),
    api_key: str | None = typer.Option(None, "--api-key", help="Bearer key (default HEARTH_BENCH_API_KEY)."),
    out_dir: Path = typer.Option(Path("bench-results"), "--out", help="Folder for JSON, CSV and PNG."),
    save: bool = typer.Option(True, "--save/--no-save", help="Store the results as planner benchmark rows."),
    model_id: str | None = MODEL_ID,
    quantization: str = QUANT,
    gpu: str = GPU,
    gpu_count: int = GPU_COUNT,
    hardware_label: str | None = HW,
) -> None:
    """Benchmark an endpoint with streaming requests; print, write and save the results."""
    try:
        config = BenchConfig(
            target=target,
            model=model,
            api_key=api_key or os.environ.get("HEARTH_BENCH_API_KEY"),
            endpoint_kind=endpoint_kind,  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            concurrency=concurrency,
            rate=rate,
            sweep_size=sweep_size,
            max_concurrency=max_concurrency,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            dataset=dataset,
            tokenizer=tokenizer,
            ignore_eos=ignore_eos,
            max_seconds=duration,
            max_requests=requests,
            max_error_rate=max_error_rate,
            warmup_requests=warmup,
        )
    except ValidationError as exc:
        _fail(_validation_message(exc))
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1.0, info="")

        def progress(state: BenchmarkState) -> None:
            done = [r for r in state.records if not r.warmup]
            errors = sum(1 for r in done if r.status == "errored")
            bar.update(
                task,
                description=state.strategy.label,
                completed=state.fraction_done(),
                info=f"{len(done)} done, {errors} errors, {len(state.in_flight)} in flight",
            )

        def finished(result: BenchmarkResult) -> None:
            bar.console.print(
                f"{result.strategy.label}: {result.requests_per_s:.2f} req/s, "
                f"TTFT p50 {result.ttft_ms.p50 or 0:.1f} ms, stopped by {result.stopped_by}"
            )

        try:
            report = uvloop.run(service.run_benchmark(config=config, progress=progress, on_result=finished))
        except HearthError as exc:
            _fail(exc.message)
            return
    console.print(console_table(report))
    for path in write_outputs(report, out_dir):
        console.print(f"wrote {path}")
    if save:
        row_labels = labels(
            model_id=model_id,
            quantization=quantization,
            gpu=gpu,
            gpu_count=gpu_count,
            hardware_label=hardware_label,
        )
        try:
            rows = rows_from_report(report, row_labels=row_labels)
            count = asyncio.run(_save(rows))
        except (HearthError, ValidationError) as exc:
            _fail(exc.message if isinstance(exc, HearthError) else _validation_message(exc))
            return
        console.print(
            f"saved {count} benchmark rows for the planner (source: hearth bench run {report.run_id})"
        )


@bench_app.command("import")
def import_report(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="A GuideLLM benchmarks.json."),
    model_id: str | None = MODEL_ID,
    quantization: str = QUANT,
    gpu: str = GPU,
    gpu_count: int = GPU_COUNT,
    hardware_label: str | None = HW,
    source: str | None = typer.Option(
        None, "--source", help="Where the report comes from (default: its path)."
    ),
) -> None:
    """Store a GuideLLM JSON report's benchmarks as planner benchmark rows."""
    try:
        report = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        _fail(f"{path} is not JSON: {exc}")
        return
    row_labels = labels(
        model_id=model_id,
        quantization=quantization,
        gpu=gpu,
        gpu_count=gpu_count,
        hardware_label=hardware_label,
    )
    try:
        rows = rows_from_guidellm(report, row_labels=row_labels, source=source or f"GuideLLM report {path}")
        count = asyncio.run(_save(rows))
    except (HearthError, ValidationError) as exc:
        _fail(exc.message if isinstance(exc, HearthError) else _validation_message(exc))
        return
    console.print(f"saved {count} benchmark rows from {path}")
