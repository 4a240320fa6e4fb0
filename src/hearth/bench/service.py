"""Bench service: run a benchmark against an endpoint, and turn runs and GuideLLM reports into the planner's
benchmark rows (the measured truth the planner calibrates on)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from hearth.bench.client import OpenAIStreamClient
from hearth.bench.guidellm import rows_from_guidellm, rows_from_report
from hearth.bench.prompts import Prompt, SyntheticPrompts, Tokenizer, load_dataset, load_tokenizer
from hearth.bench.runner import BenchmarkRunner, Progress, sweep_rates
from hearth.bench.schemas import BenchConfig, BenchmarkResult, BenchReport, Strategy
from hearth.planner.ports import BenchmarkSink
from hearth.planner.schemas import BenchmarkRowIn
from hearth.platform.errors import bad_request, invalid

PROMPT_POOL = 1024  # most distinct synthetic prompts per run; beyond it they repeat


def plan_strategies(config: BenchConfig) -> list[Strategy]:
    """The strategies a mode runs up front (a sweep adds its rates once it has measured the first two)."""
    if config.mode == "sweep":
        return [Strategy(type="synchronous"), Strategy(type="throughput", streams=config.max_concurrency)]
    if config.mode == "concurrent":
        return [Strategy(type="concurrent", streams=config.concurrency)]
    if config.mode == "throughput":
        return [Strategy(type="throughput", streams=config.concurrency or config.max_concurrency)]
    if config.mode in ("constant", "poisson"):
        return [Strategy(type=config.mode, rate=config.rate)]
    return [Strategy(type="synchronous")]


def prompt_source(config: BenchConfig, tokenizer: Tokenizer) -> Callable[[int], Prompt]:
    """Request index → prompt: dataset prompts in order (cycling), or a pool of synthetic ones made before
    the run starts, so no tokenizing happens on the event loop while requests are being timed."""
    if config.dataset is not None:
        items = load_dataset(config.dataset, tokenizer)
        return lambda index: items[index % len(items)]
    maker = SyntheticPrompts(tokenizer, prompt_tokens=config.prompt_tokens, seed=config.seed)
    size = PROMPT_POOL if config.max_requests is None else config.warmup_requests + config.max_requests
    # Long prompts: fewer distinct ones (≈ 2M tokens in all), still far more than requests in flight.
    size = max(1, min(size, PROMPT_POOL, max(64, 2_000_000 // config.prompt_tokens)))
    pool = [maker.make(i) for i in range(size)]
    return lambda index: pool[index % len(pool)]


async def run_benchmark(
    *,
    config: BenchConfig,
    tokenizer: Tokenizer | None = None,
    progress: Progress | None = None,
    on_result: Callable[[BenchmarkResult], None] | None = None,
) -> BenchReport:
    """Run every strategy of the config's mode against the endpoint and return the report."""
    tokenizer = tokenizer or load_tokenizer(config.tokenizer)
    prompts = prompt_source(config, tokenizer)
    started_at = datetime.now(UTC)
    results: list[BenchmarkResult] = []
    async with OpenAIStreamClient(config) as client:
        await client.preflight()
        runner = BenchmarkRunner(client, config, prompts, progress)
        queue = plan_strategies(config)
        while queue:
            result = await runner.run(queue.pop(0))
            results.append(result)
            if on_result is not None:
                on_result(result)
            if config.mode == "sweep" and result.strategy.type == "throughput":
                rates = sweep_rates(results[0].requests_per_s, result.requests_per_s, config.sweep_size)
                if not rates:
                    raise bad_request("the sweep measured no successful request; is the endpoint serving?")
                queue += [Strategy(type="constant", rate=r) for r in rates]
            if result.stopped_by == "max_error_rate" and config.mode == "sweep":
                break  # higher rates would only fail harder (GuideLLM stops escalating too)
    return BenchReport(
        run_id=uuid.uuid4().hex[:12],
        started_at=started_at.isoformat(),
        config=config.model_dump(mode="json", exclude={"api_key"}),
        tokenizer=tokenizer.name,
        benchmarks=results,
    )


def is_hearth_report(report: Any) -> bool:
    """Whether a JSON object is a Hearth bench report (else it is read as GuideLLM's)."""
    return isinstance(report, dict) and "run_id" in report and "tokenizer" in report


@dataclass(frozen=True)
class BenchService:
    """Turns runs and reports into rows of the planner's knowledge base, saved only through its sink (so every
    save announces itself with `BenchmarkRowsAdded`)."""

    sink: BenchmarkSink

    async def save_rows(self, *, rows: list[BenchmarkRowIn]) -> int:
        """Store rows in the planner's knowledge base (all or none); returns how many."""
        if not rows:
            raise bad_request("nothing to save: no benchmark had a successful request")
        return await self.sink.add_benchmark_rows(rows)

    async def save_report(self, *, report: BenchReport, row_labels: dict[str, Any]) -> list[BenchmarkRowIn]:
        """Save a Hearth run as measured rows (source: this run, with its endpoint and hardware label)."""
        try:
            rows = rows_from_report(report, row_labels=row_labels)
        except ValidationError as exc:
            raise invalid(exc.errors()) from None
        await self.save_rows(rows=rows)
        return rows

    async def import_report(
        self, *, report: Any, row_labels: dict[str, Any], source: str | None = None
    ) -> list[BenchmarkRowIn]:
        """Save a Hearth bench report or a GuideLLM report as measured rows; bad reports are a 400."""
        if is_hearth_report(report):
            try:
                parsed = BenchReport.model_validate(report)
            except ValidationError as exc:
                raise invalid(exc.errors()) from None
            return await self.save_report(report=parsed, row_labels=row_labels)
        return await self.import_guidellm(
            report=report, row_labels=row_labels, source=source or "GuideLLM report"
        )

    async def import_guidellm(
        self, *, report: Any, row_labels: dict[str, Any], source: str
    ) -> list[BenchmarkRowIn]:
        """Save a GuideLLM JSON report's benchmarks as measured rows."""
        try:
            rows = rows_from_guidellm(report, row_labels=row_labels, source=source)
        except ValidationError as exc:
            raise invalid(exc.errors()) from None
        await self.save_rows(rows=rows)
        return rows
