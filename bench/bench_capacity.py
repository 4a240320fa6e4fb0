"""How hard `hearth bench` can push: its own request rate against a fast fake OpenAI upstream on loopback,
so a run against a real server measures the server, not the load generator.

    .venv/bin/python bench/bench_capacity.py                 # 8 s throughput at 64 in flight, then rates
    .venv/bin/python bench/bench_capacity.py --tokens 64 --seconds 5

The fake (tests/fake_openai.py, raw asyncio + httptools) runs in its own process and streams `--tokens`
chunks per request with no delay. Reported: requests/s and streamed tokens/s the bench sustained in
throughput mode, the bench process's CPU time per request, and for constant-rate runs at fractions of that
ceiling how close the achieved rate came to the asked one (a load generator that falls behind its schedule
under-reports latency under load).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

from hearth.bench.prompts import load_tokenizer  # noqa: E402
from hearth.bench.schemas import BenchConfig, BenchmarkResult  # noqa: E402
from hearth.bench.service import run_benchmark  # noqa: E402

FAKE = (
    "import sys, threading; from tests.fake_openai import Behaviour, FakeOpenAI; "
    "s = FakeOpenAI(Behaviour(stream_chunks=int(sys.argv[2]))); s.keep_bodies = False; "
    "s.start(int(sys.argv[1])); threading.Event().wait()"
)


def start_fake(tokens: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", FAKE, str(port), str(tokens)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/models", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("fake upstream did not start")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(config: BenchConfig, tokenizer, fake_pid: int) -> tuple[BenchmarkResult, float, float, float]:  # type: ignore[no-untyped-def]
    """One benchmark; also the CPU seconds the bench and the fake used, and the wall time."""
    before, fake_before, started = cpu_seconds(), process_cpu_seconds(fake_pid), time.perf_counter()
    report = uvloop.run(run_benchmark(config=config, tokenizer=tokenizer))
    wall = time.perf_counter() - started
    return report.benchmarks[0], cpu_seconds() - before, process_cpu_seconds(fake_pid) - fake_before, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="per benchmark")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=16, help="streamed tokens per request")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    args = parser.parse_args()

    tokenizer = load_tokenizer(None)
    proc, url = start_fake(args.tokens)
    try:
        common = {
            "target": url,
            "model": "fake-model",
            "prompt_tokens": args.prompt_tokens,
            "output_tokens": args.tokens,
            "max_seconds": args.seconds,
            "warmup_requests": 200,
        }
        thr, cpu, fake_cpu, wall = run(
            BenchConfig(**common, mode="throughput", max_concurrency=args.concurrency), tokenizer, proc.pid
        )
        requests = thr.successful + thr.errored + thr.warmup
        print(
            f"throughput @{args.concurrency} in flight, {args.tokens} tokens/request: "
            f"{thr.requests_per_s:,.0f} requests/s, {thr.output_tokens_per_s:,.0f} streamed tokens/s, "
            f"TTFT p50 {thr.ttft_ms.p50:.2f} ms, errors {thr.errored}, "
            f"bench CPU {1e6 * cpu / max(requests, 1):.0f} µs/request; "
            f"busy: bench {cpu / wall:.0%} of a core, fake upstream {fake_cpu / wall:.0%}"
        )
        for fraction in (0.5, 0.8):
            rate = round(thr.requests_per_s * fraction)
            got, *_ = run(BenchConfig(**common, mode="constant", rate=rate), tokenizer, proc.pid)
            print(
                f"constant @{rate}/s ({fraction:.0%} of the ceiling): "
                f"achieved {got.requests_per_s:,.0f} requests/s ({got.requests_per_s / rate:.1%}), "
                f"TTFT p50 {got.ttft_ms.p50:.2f} ms p99 {got.ttft_ms.p99:.2f} ms, "
                f"concurrency {got.concurrency:.1f}, errors {got.errored}"
            )
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
