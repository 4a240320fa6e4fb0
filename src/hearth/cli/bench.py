"""`hearth bench run` drives an OpenAI-compatible endpoint and saves what it measured as the planner's
benchmark rows; `hearth bench import` stores a GuideLLM report the same way."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from hearth.cli.main import app

if TYPE_CHECKING:  # the bench's modules (numpy, the tokenizer, the planner) load only when a command runs
    from pydantic import ValidationError

    from hearth.bench.labels import RowLabels
    from hearth.bench.schemas import BenchReport
    from hearth.planner.schemas import BenchmarkRowIn

bench_app = typer.Typer(help="Benchmark OpenAI-compatible endpoints; feed the planner measured rows.")
app.add_typer(bench_app, name="bench")
console = Console()
err = Console(stderr=True)

MODEL_ID = typer.Option(
    None,
    "--model-id",
    help="The real id of the served model, for the planner rows, e.g. org/name.",
)
QUANT = typer.Option(None, "--quantization", help="Quantization of the served model, e.g. fp16, fp8, q4_1.")
GPU = typer.Option(None, "--gpu", help="GPU profile name, e.g. H100-80GB ('cpu' for CPU serving).")
GPU_COUNT = typer.Option(1, "--gpu-count", min=0, help="GPUs serving the model.")
HW = typer.Option(None, "--hardware-label", help="Free text about the hardware, stored with the rows.")


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(2)


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else first["msg"].removeprefix("Value error, ")


async def _save(rows: list[BenchmarkRowIn]) -> int:
    """Save through the same sink as the server, so the rows reach the outbox's `BenchmarkRowsAdded` too (the
    server's bus delivers it)."""
    from hearth.bench import service
    from hearth.config import Settings
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


def _target_and_key(target: str | None, api_key: str | None) -> tuple[str, str | None]:
    """--target, else the Hearth server the other commands use (its /v1); the key: --api-key, else
    HEARTH_BENCH_API_KEY, else HEARTH_API_KEY, else (for that Hearth server only) the home's admin key."""
    from hearth import home

    key = api_key or os.environ.get("HEARTH_BENCH_API_KEY") or os.environ.get("HEARTH_API_KEY")
    if target:
        return target, key
    return home.server_address().url + "/v1", key or home.api_key()


def _published_labels(config: Any, api_key: str | None) -> RowLabels:
    """What the target's /v1/models says about the model (nothing when it says nothing or cannot be read)."""
    import httpx

    from hearth.bench.labels import RowLabels, labels_from_models

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(f"{config.base_url}/models", headers=headers, timeout=10)
        return (
            labels_from_models(response.json(), config.model) if response.status_code == 200 else RowLabels()
        )
    except (httpx.HTTPError, ValueError):
        return RowLabels()


@bench_app.command("run")
def run(
    target: str | None = typer.Option(
        None,
        "--target",
        help="Base URL of the OpenAI API, e.g. http://host:8000/v1 (default: the Hearth server; "
        "see `hearth env`).",
    ),
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
    api_key: str | None = typer.Option(
        None, "--api-key", help="Bearer key (default HEARTH_BENCH_API_KEY, else HEARTH_API_KEY)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for JSON, CSV and PNG (default: bench-results/ in HEARTH_HOME)."
    ),
    save: bool = typer.Option(
        True,
        "--save/--no-save",
        help="Store the results as planner rows: only when the model id, quantization and GPU are known "
        "(flags, or the target's /v1/models card).",
    ),
    model_id: str | None = MODEL_ID,
    quantization: str | None = QUANT,
    gpu: str | None = GPU,
    gpu_count: int = GPU_COUNT,
    hardware_label: str | None = HW,
) -> None:
    """Benchmark an endpoint with streaming requests; print, write and save the results."""
    import uvloop
    from pydantic import ValidationError
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from hearth.bench import service
    from hearth.bench.labels import RowLabels
    from hearth.bench.outputs import console_table, write_outputs
    from hearth.bench.schemas import BenchConfig, BenchmarkResult
    from hearth.home import hearth_home
    from hearth.platform.errors import HearthError

    target, key = _target_and_key(target, api_key)
    try:
        config = BenchConfig(
            target=target,
            model=model,
            api_key=key,
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

        def progress(state: Any) -> None:
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
    for path in write_outputs(report, out_dir or hearth_home() / "bench-results"):
        console.print(f"wrote {path}")
    if not save:
        return
    labels = RowLabels(model_id=model_id, quantization=quantization, gpu=gpu)
    if labels.missing():
        labels = labels.or_else(_published_labels(config, key))
    if labels.missing():
        # An alias with a guessed quantization and GPU would teach the planner something false.
        err.print(
            f"[yellow]not saved for the planner:[/yellow] the run does not say which model it measured "
            f"(give {' '.join(labels.missing())}; the target's /v1/models card does not say). "
            f"Import the JSON later with `hearth bench import FILE "
            f"{' '.join(f + ' …' for f in labels.missing())}`.",
            highlight=False,
            soft_wrap=True,
        )
        return
    _save_report(report, labels, gpu_count=gpu_count, hardware_label=hardware_label)


def _save_report(
    report: BenchReport, labels: RowLabels, *, gpu_count: int, hardware_label: str | None
) -> None:
    from pydantic import ValidationError

    from hearth.bench.guidellm import labels as row_labels_of
    from hearth.bench.guidellm import rows_from_report
    from hearth.platform.errors import HearthError

    row_labels = row_labels_of(
        model_id=labels.model_id,
        quantization=labels.quantization or "",
        gpu=labels.gpu or "",
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
        f"saved {count} benchmark rows for the planner ({labels.model_id} {labels.quantization} on "
        f"{gpu_count}× {labels.gpu}; source: hearth bench run {report.run_id})",
        highlight=False,
        soft_wrap=True,
    )


@bench_app.command("import")
def import_report(
    path: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A GuideLLM benchmarks.json or a `hearth bench run` JSON."
    ),
    model_id: str | None = MODEL_ID,
    quantization: str = typer.Option(..., "--quantization", help="Quantization of the measured model."),
    gpu: str = typer.Option(..., "--gpu", help="GPU profile name, e.g. H100-80GB ('cpu' for CPU serving)."),
    gpu_count: int = GPU_COUNT,
    hardware_label: str | None = HW,
    source: str | None = typer.Option(
        None, "--source", help="Where the report comes from (default: its path)."
    ),
) -> None:
    """Store a GuideLLM JSON report's benchmarks (or a `hearth bench run` report's) as planner rows."""
    import orjson
    from pydantic import ValidationError

    from hearth.bench.guidellm import labels, rows_from_guidellm, rows_from_report
    from hearth.bench.schemas import BenchReport
    from hearth.bench.service import is_hearth_report
    from hearth.platform.errors import HearthError

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
        if is_hearth_report(report):
            if not model_id:
                _fail("a hearth bench report names an alias, not a model: pass --model-id")
                return
            rows = rows_from_report(BenchReport.model_validate(report), row_labels=row_labels)
        else:
            rows = rows_from_guidellm(
                report, row_labels=row_labels, source=source or f"GuideLLM report {path}"
            )
        count = asyncio.run(_save(rows))
    except (HearthError, ValidationError) as exc:
        _fail(exc.message if isinstance(exc, HearthError) else _validation_message(exc))
        return
    console.print(f"saved {count} benchmark rows from {path}")
