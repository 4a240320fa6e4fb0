"""`hearth plan`: from a plain-language use case to a ranked capacity plan, manifests and a chart.

Runs locally against Hearth's database (HEARTH_DATABASE_URL, default SQLite in HEARTH_HOME): the knowledge
base there includes the rows `hearth bench` saved. The intent comes from the gateway's `chat` alias (the
models in HEARTH_CONFIG_FILE / hearth.yaml, embedded by default) with the deterministic parser as the floor;
`--no-model` uses the parser only."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from hearth.cli.main import app

T = TypeVar("T")
console = Console()


class _PlanGroup(TyperGroup):
    """`hearth plan "text"` runs the plan; `hearth plan predict|calibrate …` run those subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["make", *args]
        return super().parse_args(ctx, args)


plan_app = typer.Typer(
    cls=_PlanGroup,
    help='Plan an LLM deployment: hearth plan "a chatbot for 5,000 employees". Computes locally against the '
    "database (HEARTH_DATABASE_URL or the one in HEARTH_HOME), no server needed.",
    no_args_is_help=True,
)
app.add_typer(plan_app, name="plan")


def _run(work: Callable[[Any], Awaitable[T]], *, use_model: bool = False) -> T:
    """Run `work(service)` with a PlannerService on the configured database (and gateway, for the model)."""
    from hearth.config import Settings
    from hearth.events.bus import EventBus
    from hearth.planner.knowledge import seed_knowledge_base
    from hearth.planner.service import PlannerService
    from hearth.platform.db import Database
    from hearth.platform.migrate import upgrade

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)

    async def main() -> T:
        db = Database(settings.resolved_database_url)
        gateway = None
        try:
            await seed_knowledge_base(db=db)
            if use_model:
                from hearth.gateway.service import Gateway

                # Only the chat alias and its backends: starting the whole catalogue (embedder, whisper,
                # piper) took seconds before a 10 ms search.
                gateway = Gateway(_chat_only(settings.models), llm_threads=settings.llm_threads)
                await gateway.start()
            return await work(PlannerService(db=db, bus=EventBus(db), settings=settings, gateway=gateway))
        finally:
            if gateway is not None:
                await gateway.close()
            await db.close()

    return asyncio.run(main())


def _chat_is_remote() -> bool:
    """Whether the `chat` alias's first choice is a remote server (a real model) rather than embedded."""
    from hearth.config import Settings

    models = Settings().models
    alias = models.aliases.get("chat")
    if alias is None:
        return False
    first = min(alias.deployments, key=lambda d: d.priority)
    return models.backends[first.backend].type == "openai"


def _chat_only(models: Any) -> Any:
    """The model catalogue cut down to the `chat` alias and the backends it needs."""
    alias = models.aliases.get("chat")
    if alias is None:
        return type(models)()
    needed = {d.backend for d in alias.deployments}
    needed |= {models.backends[n].embedder for n in needed if models.backends[n].embedder}
    return type(models)(
        backends={n: b for n, b in models.backends.items() if n in needed}, aliases={"chat": alias}
    )


def _fail(exc: Exception) -> None:
    from hearth.platform.errors import HearthError

    message = exc.message if isinstance(exc, HearthError) else str(exc)
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@plan_app.command("make", hidden=True)
def make(
    text: str = typer.Argument(..., help="The use case in plain language."),
    use_model: bool | None = typer.Option(
        None,
        "--model/--no-model",
        help="Ask the chat alias to read the use case (else the parser only). Default: ask it only when "
        "`chat` is served by a remote model; the embedded 135M demo model cannot read one and costs seconds.",
    ),
    users: int | None = typer.Option(None, help="Override the number of users."),
    qps: float | None = typer.Option(None, help="Override the expected peak requests/s."),
    experience: str | None = typer.Option(None, help="instant|conversational|interactive|deferred|batch."),
    ttft: float | None = typer.Option(None, help="TTFT p95 target, ms."),
    itl: float | None = typer.Option(None, help="ITL p95 target, ms."),
    e2e: float | None = typer.Option(None, help="E2E p95 target, ms."),
    prompt_tokens: int | None = typer.Option(None, help="Traffic profile: prompt tokens."),
    output_tokens: int | None = typer.Option(None, help="Traffic profile: output tokens."),
    budget: float | None = typer.Option(None, help="Monthly budget, USD."),
    gpu: list[str] = typer.Option([], "--gpu", help="Allowed GPU profile (repeat), e.g. H100-80GB."),
    model: list[str] = typer.Option([], "--model-id", help="Allowed catalog model (repeat)."),
    w_accuracy: float = typer.Option(0.4, help="Weight of accuracy in the balanced ranking."),
    w_cost: float = typer.Option(0.3, help="Weight of cost."),
    w_latency: float = typer.Option(0.2, help="Weight of latency."),
    w_complexity: float = typer.Option(0.1, help="Weight of simplicity."),
    top: int = typer.Option(10, help="Options to show."),
    out: Path | None = typer.Option(
        None, help="Folder for the manifests, spec, plan JSON and chart (default: plan/ in HEARTH_HOME)."
    ),
    spec_file: Path | None = typer.Option(None, "--spec", help="Re-plan an edited spec.json (what-if)."),
) -> None:
    """Intent → spec → ranked options; writes manifests of the top option and a cost/latency chart."""
    from pydantic import ValidationError

    from hearth.planner.schemas import PlanRequest, Spec, Weights
    from hearth.planner.spec import PROFILES, slo_for
    from hearth.platform.errors import HearthError

    async def work(svc: Any) -> tuple[Any, Any, str]:
        if spec_file is not None:
            spec = Spec.model_validate_json(await asyncio.to_thread(spec_file.read_text))
            by = "spec file"
        else:
            caller = None
            if use_model:  # the gateway module is heavy to import: only when the model is asked
                from hearth.gateway.service import Caller

                caller = Caller(user_id="cli")
            extracted = await svc.extract(text=text, caller=caller, use_model=use_model)
            spec, by = extracted.spec, extracted.extracted_by
        spec = _edit(
            spec,
            users=users,
            qps=qps,
            experience=experience,
            ttft=ttft,
            itl=itl,
            e2e=e2e,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            budget=budget,
            gpus=gpu,
            profiles=PROFILES,
            slo_for=slo_for,
        )
        weights = Weights(accuracy=w_accuracy, cost=w_cost, latency=w_latency, complexity=w_complexity)
        result = await svc.plan(
            request=PlanRequest(spec=spec, weights=weights, models=model or None, limit=top)
        )
        built = await svc.manifests(request=_manifest_request(result.balanced[0]))
        return result, built, by

    if use_model is None:
        use_model = _chat_is_remote()
    try:
        result, built, by = _run(work, use_model=use_model and spec_file is None)
    except (HearthError, ValueError, ValidationError) as exc:
        _fail(exc)
        return
    _print_spec(result, by)
    _print_options(
        result.balanced,
        f"Ranked options (balanced, of {result.candidates_meeting_slo} meeting the "
        f"SLOs; search {result.search_ms:.0f} ms)",
    )
    if out is None:
        from hearth.home import hearth_home

        out = hearth_home() / "plan"
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_text(result.spec.model_dump_json(indent=2))
    (out / "plan.json").write_text(result.model_dump_json(indent=2))
    (out / f"{built.name}.yaml").write_text(built.yaml)
    chart = out / "cost-vs-latency.png"
    write_chart(result, chart)
    console.print(
        f"\nmanifests: {out / (built.name + '.yaml')} (top option, validated)\nspec: {out / 'spec.json'}"
        f" (edit it and re-plan with --spec)\nchart: {chart}"
    )


def _manifest_request(option: Any) -> Any:
    from hearth.planner.schemas import ManifestRequest

    return ManifestRequest(option=option)


def _edit(
    spec: Any,
    *,
    users: int | None,
    qps: float | None,
    experience: str | None,
    ttft: float | None,
    itl: float | None,
    e2e: float | None,
    prompt_tokens: int | None,
    output_tokens: int | None,
    budget: float | None,
    gpus: list[str],
    profiles: dict,
    slo_for: Callable,
) -> Any:
    data = spec.model_dump()
    if users is not None:
        data["workload"]["users"] = users
    if qps is not None:
        data["qps"] = qps
    if prompt_tokens is not None or output_tokens is not None:
        data["traffic"] = {
            "name": "custom",
            "prompt_tokens": prompt_tokens or spec.traffic.prompt_tokens,
            "output_tokens": output_tokens or spec.traffic.output_tokens,
        }
    if experience is not None:
        data["experience_class"] = experience
        name = data["traffic"]["name"]
        data["slo"] = slo_for(name if name in profiles else "512-256", experience).model_dump()
    for key, value in (("ttft_ms_p95", ttft), ("itl_ms_p95", itl), ("e2e_ms_p95", e2e)):
        if value is not None:
            data["slo"][key] = value
    if budget is not None:
        data["budget_per_month"] = budget
    if gpus:
        data["preferred_gpus"] = gpus
    return type(spec).model_validate(data)


def _print_spec(result: Any, by: str) -> None:
    s = result.spec
    console.print(f"[bold]Specification[/bold] (intent read by: {by})")
    console.print(f"  use case        {s.use_case} — {s.description}")
    console.print(f"  experience      {s.experience_class}")
    console.print(
        f"  traffic         {s.traffic.prompt_tokens} → {s.traffic.output_tokens} tokens ({s.traffic.name})"
    )
    console.print(
        f"  SLO (p95)       TTFT ≤ {s.slo.ttft_ms_p95:g} ms, ITL ≤ {s.slo.itl_ms_p95:g} ms, "
        f"E2E ≤ {s.slo.e2e_ms_p95:g} ms"
    )
    w = s.workload
    console.print(
        f"  load            {w.users} users × {w.active_fraction:g} active × "
        f"{w.requests_per_active_user_hour:g} req/h ÷ 3600 × peak {w.peak_multiplier:g} = "
        f"{result.expected_qps:.2f} req/s" + (" (overridden)" if s.qps else "")
    )
    if s.budget_per_month:
        console.print(f"  budget          ${s.budget_per_month:,.0f}/month")
    if s.preferred_gpus:
        console.print(f"  GPUs            {', '.join(s.preferred_gpus)}")
    for note in result.notes:
        console.print(f"  note            {note}")


def _print_options(options: list[Any], title: str) -> None:
    table = Table(
        "#",
        "model",
        "quant",
        "GPUs",
        "replicas",
        "max seqs",
        "TTFT p95",
        "ITL p95",
        "E2E p95",
        "$/month",
        "quality",
        "score",
        "pareto",
        title=title,
    )
    for o in options:
        table.add_row(
            str(o.rank),
            o.model_id.split("/")[-1],
            o.quantization,
            f"{o.gpus_per_replica}× {o.gpu}",
            str(o.replicas),
            str(o.max_num_seqs),
            f"{o.ttft_ms_p95:,.0f} ms",
            f"{o.itl_ms_p95:.1f} ms",
            f"{o.e2e_ms_p95 / 1e3:.1f} s",
            f"{o.monthly_cost:,.0f}",
            f"{o.quality:g}",
            f"{o.scores['balanced']:.2f}",
            "●" if o.pareto else "",
        )
    console.print(table)


def write_chart(result: Any, path: Path) -> None:
    """Monthly cost against E2E p95 for the ranked options: the cost/latency Pareto front as a step line,
    options on the full (cost, latency, quality) front ringed, colour for quality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hearth.planner.search import _pareto

    seen: dict[tuple, Any] = {}
    for group in (
        result.balanced,
        result.cheapest,
        result.fastest,
        result.best_accuracy,
        result.simplest,
        result.pareto,
    ):
        for o in group:
            seen[(o.model_id, o.quantization, o.gpu, o.gpus_per_replica)] = o
    options = list(seen.values())
    latency = np.array([o.e2e_ms_p95 / 1e3 for o in options])
    cost = np.array([o.monthly_cost for o in options])
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=110)
    points = ax.scatter(
        latency,
        cost,
        c=[o.quality for o in options],
        cmap="viridis",
        s=45,
        zorder=3,
        edgecolors=["black" if o.pareto else "none" for o in options],
        linewidths=1.2,
    )
    fig.colorbar(points, ax=ax, label="quality (benchmark score; ringed: on the cost/latency/quality front)")
    front = np.flatnonzero(_pareto(cost, latency))
    front = front[np.argsort(latency[front])]
    ax.step(
        latency[front],
        cost[front],
        where="post",
        color="crimson",
        zorder=2,
        label="Pareto front of cost and latency",
    )
    for i in front[:10]:
        o = options[i]
        ax.annotate(
            f"{o.model_id.split('/')[-1]} {o.quantization}\n{o.replicas}×{o.gpus_per_replica} {o.gpu}",
            (latency[i], cost[i]),
            fontsize=7,
            xytext=(5, 6),
            textcoords="offset points",
        )
    ax.set_xlabel("E2E latency p95 at the expected load (s)")
    ax.set_ylabel("monthly cost (USD)")
    ax.set_yscale("log")
    ax.set_title(
        f"{result.spec.use_case}: {result.expected_qps:.2f} req/s, "
        f"{result.spec.traffic.prompt_tokens}→{result.spec.traffic.output_tokens} tokens"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@plan_app.command()
def predict(
    model_id: str = typer.Option(
        ..., "--model", help="Catalog model id, e.g. meta-llama/Llama-3.1-8B-Instruct."
    ),
    quantization: str = typer.Option(
        "bf16", "--quant", help="bf16 (fp16 means the same 16-bit class), fp8 or int4-awq."
    ),
    gpu: str = typer.Option(..., help="GPU profile, e.g. H100-80GB (see `hearth plan gpus`)."),
    gpus: int = typer.Option(1, "--gpus", help="GPUs per replica (tensor parallel size)."),
    prompt_tokens: int = typer.Option(512, "--prompt", help="Prompt tokens."),
    output_tokens: int = typer.Option(256, "--output", help="Output tokens."),
    concurrency: float | None = typer.Option(None, help="Concurrent requests (closed loop)."),
    rate: float | None = typer.Option(None, help="Requests/s (open loop, Poisson)."),
    engine: str = typer.Option(
        "vllm",
        help="Serving engine: vllm (what the planner deploys) or tensorrt-llm (as in NVIDIA NIM); it sets "
        "how much memory the KV cache gets, so the batch limit.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Predict TTFT, ITL, E2E (p50, p95), tokens/s and requests/s for one configuration and load, with the
    expected error (held-out MAPE per metric) and the sources that informed it."""
    from pydantic import ValidationError

    from hearth.planner.schemas import PredictRequest
    from hearth.platform.errors import HearthError

    try:
        request = PredictRequest(
            model_id=model_id,
            quantization=quantization,
            gpu=gpu,
            gpu_count=gpus,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            concurrency=concurrency,
            request_rate=rate,
            engine=engine,
        )
        result = _run(lambda svc: svc.predict(request=request))
    except (HearthError, ValidationError) as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table(
        "metric",
        "p50",
        "p95",
        title=f"{model_id} {quantization} on {gpus}× {gpu}, "
        f"{prompt_tokens}→{output_tokens} tokens, "
        + (f"{rate:g} req/s" if rate else f"concurrency {concurrency:g}" if concurrency else "saturated"),
    )
    for name, p50, p95 in (
        ("TTFT (ms)", result.ttft_ms_p50, result.ttft_ms_p95),
        ("ITL (ms)", result.itl_ms_p50, result.itl_ms_p95),
        ("E2E (ms)", result.e2e_ms_p50, result.e2e_ms_p95),
    ):
        table.add_row(name, _fmt(p50), _fmt(p95))
    console.print(table)
    console.print(
        f"output tokens/s {_fmt(result.output_tokens_per_s)}, requests/s {_fmt(result.requests_per_s)}"
    )
    err = f", expected error ~{result.expected_error_pct:g} %" if result.expected_error_pct else ""
    console.print(f"source: {result.source}, confidence: {result.confidence}{err}")
    if result.expected_error_by_metric:
        per = ", ".join(f"{m} {v:g} %" for m, v in result.expected_error_by_metric.items())
        console.print(f"held-out error ({result.error_basis}): {per}")
    for used in result.rows_used:
        console.print(f"informed by: {used}")
    for note in result.notes:
        console.print(f"note: {note}")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


@plan_app.command()
def calibrate(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Fit the engine model on the benchmark rows; print the fitted efficiencies and overheads, and the error
    on held-out online rows (leave one source / configuration / row out), per metric and per source."""
    report = _run(lambda svc: svc.calibration())
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    console.print(
        f"rows: {report['rows']} ({report['rows_used_for_fit']} on catalog models and GPUs, "
        f"{report['online_rows']} online); KV capacity scale (measured ÷ computed): {report['kv_scale']:.2f}"
    )
    table = Table(
        "GPU",
        "BW eff.",
        "FLOP eff.",
        "FP8 BW eff.",
        "FP8 FLOP eff.",
        "FP8 decode ×",
        "step ms",
        "per-seq µs",
        "request ms",
        "front-end ms/stream",
        "all-reduce µs",
    )
    for name, t in [("all (prior)", report["global"]), *report["per_gpu"].items()]:
        table.add_row(
            name,
            f"{t['bandwidth_efficiency']:.2f}",
            f"{t['compute_efficiency']:.2f}",
            f"{t['fp8_bandwidth_efficiency']:.2f}",
            f"{t['fp8_compute_efficiency']:.2f}",
            f"{t['fp8_decode_speedup']:.2f}",
            f"{t['step_overhead_ms']:.2f}",
            f"{t['per_sequence_step_overhead_us']:.1f}",
            f"{t['request_overhead_ms']:.1f}",
            f"{t['frontend_per_stream_ms']:.2f}",
            f"{t['allreduce_call_us']:.1f}",
        )
    console.print(table)
    err = Table(
        "held out",
        "source",
        "metric",
        "rows",
        "MAPE %",
        "median %",
        title="Error on online rows held out of the calibration (mean / median absolute % error)",
    )
    for mode, part in report["held_out_error"].items():
        for metric, m in part["overall"].items():
            err.add_row(mode, "all", metric, str(m["rows"]), f"{m['mape_pct']:.1f}", f"{m['median_pct']:.1f}")
        for source, metrics in part["per_source"].items():
            for metric, m in metrics.items():
                err.add_row(
                    "", source[:60], metric, str(m["rows"]), f"{m['mape_pct']:.1f}", f"{m['median_pct']:.1f}"
                )
    console.print(err)


@plan_app.command()
def gpus() -> None:
    """List the GPU profiles (with prices and their sources)."""
    from hearth.planner.knowledge import list_gpus

    items = _run(lambda svc: list_gpus(db=svc.db))
    table = Table("name", "node label", "GB", "GB/s", "bf16 TFLOPS", "$/h", "price source")
    for g in items:
        table.add_row(
            g.name,
            g.product_label,
            f"{g.memory_gb:g}",
            f"{g.bandwidth_gbs:g}",
            f"{g.tflops_bf16:g}",
            f"{g.price_per_hour:g}",
            f"{g.price_source} ({g.price_date})",
        )
    console.print(table)
