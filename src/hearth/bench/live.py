"""Short benches started from the web UI (`POST /api/bench/runs`): one load point per concurrency level,
each measured by the same `BenchmarkRunner` and statistics as `hearth bench run`, reported as a stream of
events while they run (progress, each level's figures as it ends) and stored in `bench_runs` when done.

An alias is driven through the gateway in this process (`GatewayClient`: no key, no HTTP hop); a URL with
the `OpenAIStreamClient` of the CLI. Runs are not saved as planner rows: an alias names no model id,
quantization or GPU, and a row without them would teach the planner something false (docs/bench.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from sqlalchemy import select

from hearth.bench.client import OpenAIStreamClient
from hearth.bench.gateway_client import GatewayClient
from hearth.bench.models import BenchRun
from hearth.bench.prompts import Prompt, Tokenizer, load_tokenizer
from hearth.bench.runner import BenchmarkRunner, BenchmarkState
from hearth.bench.schemas import (
    BenchConfig,
    BenchmarkResult,
    BenchRunOut,
    LevelSummary,
    LiveRunRequest,
    RequestRecord,
    Strategy,
)
from hearth.bench.service import prompt_source
from hearth.gateway.service import Caller, Gateway
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.kit.repository import Repository

log = logging.getLogger("hearth.bench")

LEVEL_SECONDS = 120.0  # a level stops here even if its requests are not all done (they count incomplete)
MAX_ERROR_RATE = 0.5  # a failing endpoint stops after 10 finished requests, not after 200
PROGRESS_EVERY = 0.25  # seconds between progress events (the latest state; intermediate ones are dropped)
# Stands in for the target of an alias run: the runner reads only the load settings of a BenchConfig.
IN_PROCESS = "http://in-process.gateway/v1"


class Client(Protocol):
    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def preflight(self) -> None: ...
    async def send(self, index: int, prompt: str, prompt_tokens: int) -> RequestRecord: ...


class BenchRunRepository(Repository[BenchRun]):
    """Runs are shared by the admins (like planner rows): no owner filter."""

    model = BenchRun
    noun = "bench run"
    param = "run_id"


def bench_config(request: LiveRunRequest) -> BenchConfig:
    return BenchConfig(
        target=request.url or IN_PROCESS,
        model=request.alias or request.model or "",
        api_key=request.api_key,
        mode="concurrent",
        concurrency=max(request.concurrency),
        prompt_tokens=request.prompt_tokens,
        output_tokens=request.output_tokens,
        max_requests=request.requests,
        max_seconds=LEVEL_SECONDS,
        max_error_rate=MAX_ERROR_RATE,
        request_timeout=LEVEL_SECONDS,
    )


def strategy_for(streams: int) -> Strategy:
    return Strategy(type="synchronous") if streams == 1 else Strategy(type="concurrent", streams=streams)


def level_summary(result: BenchmarkResult, streams: int) -> LevelSummary:
    return LevelSummary(
        concurrency=streams,
        strategy=result.strategy.label,
        successful=result.successful,
        errored=result.errored,
        incomplete=result.incomplete,
        duration_s=round(result.duration_s, 3),
        requests_per_s=result.requests_per_s,
        output_tokens_per_s=result.output_tokens_per_s,
        ttft_ms=result.ttft_ms,
        itl_ms=result.itl_ms,
        e2e_ms=result.e2e_ms,
        errors=result.errors,
    )


def progress_event(state: BenchmarkState, index: int, levels: int, requests: int) -> dict[str, Any]:
    finished = [r for r in state.records if not r.warmup]
    return {
        "type": "progress",
        "level": index,
        "levels": levels,
        "strategy": state.strategy.label,
        "finished": len(finished),
        "errored": sum(1 for r in finished if r.status == "errored"),
        "in_flight": len(state.in_flight),
        "requests": requests,
    }


class LiveRuns:
    """Runs the web UI's benches and keeps them."""

    def __init__(self, db: Database, gateway: Gateway) -> None:
        self.db = db
        self.gateway = gateway
        self._tokenizer: Tokenizer | None = None
        self._preparing = asyncio.Lock()  # one run tokenizes its prompts at a time

    async def prompts(self, config: BenchConfig) -> Callable[[int], Prompt]:
        """The run's prompts, made off the event loop before anything is timed (the tokenizer, SmolLM2's
        vocabulary, is loaded once)."""
        async with self._preparing:
            if self._tokenizer is None:
                self._tokenizer = await asyncio.to_thread(load_tokenizer, None)
            tokenizer = self._tokenizer
            return await asyncio.to_thread(prompt_source, config, tokenizer)

    def client(self, request: LiveRunRequest, config: BenchConfig, caller: Caller) -> Client:
        if request.alias is not None:
            return GatewayClient(self.gateway, caller, config)
        return OpenAIStreamClient(config)

    async def run(
        self, *, request: LiveRunRequest, caller: Caller, user_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Events: `started`, `progress`…, `level` per concurrency level, then `done` (the stored run) or
        `error`. Closing the iterator (the browser went away) cancels the run and stores nothing."""
        config = bench_config(request)
        client = self.client(request, config, caller)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        levels: list[LevelSummary] = []

        count = len(request.concurrency)

        async def work() -> None:
            prompts = await self.prompts(config)
            async with client:
                await client.preflight()
                for index, streams in enumerate(request.concurrency):

                    def report(state: BenchmarkState, index: int = index) -> None:
                        queue.put_nowait(progress_event(state, index, count, request.requests))

                    result = await BenchmarkRunner(client, config, prompts, report).run(strategy_for(streams))
                    level = level_summary(result, streams)
                    levels.append(level)
                    queue.put_nowait(
                        {"type": "level", "index": index, "level": level.model_dump(mode="json")}
                    )

        yield {"type": "started", "levels": request.concurrency, "requests": request.requests}
        task = asyncio.create_task(work())
        try:
            async for event in _drain(queue, task):
                yield event
            error: str | None = None
            try:
                task.result()
            except HearthError as exc:
                error = exc.message
            except Exception as exc:  # a bug or an unexpected client error: stored and shown, not lost
                log.exception("bench run failed")
                error = f"the run failed: {type(exc).__name__}: {exc}"[:500]
            stored = await self.store(request=request, user_id=user_id, levels=levels, error=error)
            if error is not None:
                yield {
                    "type": "error",
                    "status": 400,
                    "message": error,
                    "run": stored.model_dump(mode="json"),
                }
            else:
                yield {"type": "done", "run": stored.model_dump(mode="json")}
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def store(
        self, *, request: LiveRunRequest, user_id: str, levels: list[LevelSummary], error: str | None
    ) -> BenchRunOut:
        settings = request.model_dump(mode="json", exclude={"api_key", "url", "alias", "model"})
        row = BenchRun(
            user_id=user_id,
            target=request.target,
            model=request.alias or request.model or "",
            status="failed" if error is not None else "completed",
            error=error,
            settings=settings,
            levels=[level.model_dump(mode="json") for level in levels],
        )
        async with self.db.transaction() as session:
            session.add(row)
        return BenchRunOut.model_validate(row)

    async def list(self, *, limit: int) -> list[BenchRunOut]:
        async with self.db.sessions() as session:
            repo = BenchRunRepository(session)
            stmt = select(BenchRun).order_by(BenchRun.created_at.desc(), BenchRun.id)
            return [BenchRunOut.model_validate(r) for r in await repo.list(stmt, limit=limit)]

    async def get(self, *, run_id: str) -> BenchRunOut:
        async with self.db.sessions() as session:
            return BenchRunOut.model_validate(await BenchRunRepository(session).get_or_404(run_id))


async def _drain(
    queue: asyncio.Queue[dict[str, Any]], task: asyncio.Task[None]
) -> AsyncIterator[dict[str, Any]]:
    """The queue's events until the task ends; of a burst of progress events only the latest goes out, at
    most every PROGRESS_EVERY seconds (level events always go out, in order)."""
    latest: dict[str, Any] | None = None
    sent_at = 0.0
    while True:
        try:
            event = await asyncio.wait_for(queue.get(), PROGRESS_EVERY)
        except TimeoutError:
            event = None
        if event is not None and event["type"] == "progress":
            latest = event
        elif event is not None:
            if latest is not None:
                yield latest
                latest = None
            yield event
        if latest is not None and time.monotonic() - sent_at >= PROGRESS_EVERY:
            yield latest
            latest, sent_at = None, time.monotonic()
        if task.done() and queue.empty():
            if latest is not None:
                yield latest
            return
