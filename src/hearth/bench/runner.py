"""Load strategies (GuideLLM's): synchronous, concurrent, throughput, constant rate, poisson, and the sweep.

Closed-loop strategies run N workers that each send the next request when their last one ends; open-loop ones
(constant, poisson) dispatch on a schedule whatever is still in flight. A benchmark stops issuing at
`max_requests`, cancels what is in flight at `max_seconds` (those count as incomplete, as in GuideLLM) or
when the error rate passes `max_error_rate`. The first `warmup_requests` are sent but not measured, and the
duration limit starts counting only once they have been issued.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from hearth.bench.client import OpenAIStreamClient
from hearth.bench.metrics import summarize
from hearth.bench.prompts import Prompt
from hearth.bench.schemas import BenchConfig, BenchmarkResult, RequestRecord, Strategy

# Error-rate stops need a few finished requests first, or one early failure would end any run.
MIN_FINISHED_FOR_ERROR_RATE = 10

Progress = Callable[["BenchmarkState"], None]


@dataclass
class BenchmarkState:
    """Live state of one benchmark, also what the progress bar shows."""

    strategy: Strategy
    config: BenchConfig
    records: list[RequestRecord] = field(default_factory=list)
    issued: int = 0
    in_flight: dict[int, tuple[asyncio.Task, float, int]] = field(default_factory=dict)
    stopped_by: str | None = None
    measure_started: float | None = None

    @property
    def measured_finished(self) -> list[RequestRecord]:
        return [r for r in self.records if not r.warmup and r.status != "incomplete"]

    def fraction_done(self) -> float:
        c = self.config
        parts = []
        if c.max_requests:
            parts.append(len(self.measured_finished) / c.max_requests)
        if c.max_seconds and self.measure_started is not None:
            parts.append((time.perf_counter() - self.measure_started) / c.max_seconds)
        return min(1.0, max(parts, default=0.0))


class BenchmarkRunner:
    """Runs one strategy against the endpoint and summarizes it."""

    def __init__(
        self,
        client: OpenAIStreamClient,
        config: BenchConfig,
        prompts: Callable[[int], Prompt],
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.prompts = prompts
        self.progress = progress

    async def run(self, strategy: Strategy) -> BenchmarkResult:
        """Drive the endpoint with `strategy` until a stop condition, then summarize the records."""
        state = BenchmarkState(strategy=strategy, config=self.config)
        self._stop = asyncio.Event()
        self._deadline_task: asyncio.Task | None = None
        if self.config.warmup_requests == 0:
            self._start_clock(state)
        try:
            if strategy.type in ("constant", "poisson"):
                await self._open_loop(state)
            else:
                streams = {"synchronous": 1, "concurrent": strategy.streams or 1}.get(
                    strategy.type, strategy.streams or self.config.max_concurrency
                )
                await asyncio.gather(*(self._worker(state) for _ in range(streams)))
        finally:
            if self._deadline_task is not None:
                self._deadline_task.cancel()
        state.records.sort(key=lambda r: r.index)
        return summarize(state.records, strategy=strategy, stopped_by=state.stopped_by or "done")

    # -- issuing --------------------------------------------------------------------------------------

    def _next_index(self, state: BenchmarkState) -> int | None:
        c = self.config
        if self._stop.is_set():
            return None
        if c.max_requests is not None and state.issued >= c.warmup_requests + c.max_requests:
            return None
        index = state.issued
        state.issued += 1
        if index == c.warmup_requests and state.measure_started is None:
            self._start_clock(state)
        return index

    def _start_clock(self, state: BenchmarkState) -> None:
        state.measure_started = time.perf_counter()
        if self.config.max_seconds is not None:
            self._deadline_task = asyncio.ensure_future(self._deadline(state, self.config.max_seconds))

    async def _deadline(self, state: BenchmarkState, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._halt(state, "max_seconds")

    def _halt(self, state: BenchmarkState, reason: str) -> None:
        if self._stop.is_set():
            return
        state.stopped_by = reason
        self._stop.set()
        for task, _, _ in list(state.in_flight.values()):
            task.cancel()

    async def _worker(self, state: BenchmarkState) -> None:
        while (index := self._next_index(state)) is not None:
            await self._one(state, index)

    async def _open_loop(self, state: BenchmarkState) -> None:
        offsets = arrivals(state.strategy, self.config.seed)
        pending: set[asyncio.Task] = set()
        start = time.perf_counter()
        while (index := self._next_index(state)) is not None:
            next_at = start + next(offsets)
            delay = next_at - time.perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break  # stopped while waiting for the slot
                except TimeoutError:
                    pass
            task = asyncio.ensure_future(self._one(state, index))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)

    async def _one(self, state: BenchmarkState, index: int) -> None:
        prompt = self.prompts(index)
        task = asyncio.ensure_future(self.client.send(index, prompt.text, prompt.tokens))
        state.in_flight[index] = (task, time.perf_counter(), prompt.tokens)
        try:
            record = await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this coroutine itself was cancelled, not the request
            _, started, tokens = state.in_flight[index]
            record = RequestRecord(
                index=index, start=started, end=time.perf_counter(), prompt_tokens=tokens, status="incomplete"
            )
        finally:
            state.in_flight.pop(index, None)
        record.warmup = index < self.config.warmup_requests
        state.records.append(record)
        self._check_error_rate(state)
        if self.progress is not None:
            self.progress(state)

    def _check_error_rate(self, state: BenchmarkState) -> None:
        limit = self.config.max_error_rate
        if limit is None:
            return
        finished = state.measured_finished
        if len(finished) < MIN_FINISHED_FOR_ERROR_RATE:
            return
        errors = sum(1 for r in finished if r.status == "errored")
        if errors / len(finished) > limit:
            self._halt(state, "max_error_rate")


def arrivals(strategy: Strategy, seed: int) -> Iterator[float]:
    """Seconds from the start at which an open-loop strategy sends each request: every 1/rate (constant),
    or with exponential gaps of mean 1/rate from a seeded generator (poisson), so a run is repeatable."""
    rate = float(strategy.rate or 0)
    rng = random.Random(seed)
    at = 0.0
    while True:
        yield at
        at += rng.expovariate(rate) if strategy.type == "poisson" else 1.0 / rate


def sweep_rates(synchronous_rps: float, throughput_rps: float, size: int) -> list[float]:
    """The constant rates a sweep runs after its synchronous and throughput benchmarks (GuideLLM's rule:
    `linspace(sync, throughput, size − 1)[1:]`, so the sweep has `size` benchmarks in all)."""
    if synchronous_rps <= 0 and throughput_rps <= 0:
        return []
    return [float(r) for r in np.linspace(synchronous_rps, throughput_rps, size - 1)[1:] if r > 0]
