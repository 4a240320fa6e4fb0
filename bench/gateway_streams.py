"""`bench/gateway.py --streams N …`: N concurrent streamed chat completions relayed by Hearth from a fake
upstream that sends a chunk every `--chunk-delay` (20 ms), for `--stream-seconds`, each stream starting
again when it ends.

For each N the same streams run straight to the upstream, then through Hearth, in the same process with the
same client. The client measures the gap between consecutive chunks of a stream; the delay Hearth adds is the
difference of the two runs' gap percentiles (the client's own delay, large at 1,000 streams on a small
machine, is in both). Reported: gap p50/p99 direct and via Hearth, added p50/p99, errors (non-200, a stream
without [DONE], a broken connection), Hearth's CPU (share of one core over the run) and RSS sampled ten times
over the run (flat = no growth with time), and the client's own event-loop lag.

Target (issue 19) at N = 1,000: added p99 <= 20 ms, no errors, RSS flat over 5 minutes
(`--streams 1000 --stream-seconds 300`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop
from tests.harness import free_port

from bench.gateway import start_hearth, stop
from bench.soak import UPSTREAM, Record, lag_ticker, one_stream, percentile, rss_mb

BODY = orjson.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True}
)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def run(url: str, headers: dict[str, str], streams: int, seconds: float, pid: int | None) -> dict:
    """`streams` workers streaming from `url` for `seconds`; what they saw, and `pid`'s CPU and RSS."""
    rec = Record()
    rss: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm: open the connections and the code paths once (not measured).
        warm = Record()
        await asyncio.gather(*(one_stream(session, url, BODY, headers, i, warm) for i in range(streams)))
        gc.collect()
        gc.freeze()  # the client's own collections must not look like Hearth's delay
        start = time.monotonic()
        until = start + seconds
        cpu0 = cpu_seconds(pid) if pid else 0.0

        async def worker(sid: int) -> None:
            while time.monotonic() < until:
                await one_stream(session, url, BODY, headers, sid, rec)

        async def sampler() -> None:
            if pid is None:
                return
            for _ in range(10):
                rss.append(rss_mb(pid))
                await asyncio.sleep(seconds / 10)

        await asyncio.gather(lag_ticker(rec, until), sampler(), *(worker(i) for i in range(streams)))
        elapsed = time.monotonic() - start
        cpu = (cpu_seconds(pid) - cpu0) / elapsed if pid else 0.0
        if pid:
            rss.append(rss_mb(pid))
        gc.unfreeze()
    gaps = sorted(g * 1000 for g in rec.gaps)
    lags = sorted(lag * 1000 for lag in rec.lags)
    return {
        "p50": percentile(gaps, 50),
        "p99": percentile(gaps, 99),
        "gaps": len(gaps),
        "completed": rec.completed,
        "errors": dict(rec.errors),
        "cpu": cpu,
        "rss": rss,
        "client_lag_p99": percentile(lags, 99),
    }


def run_streams(args: argparse.Namespace) -> None:
    port = free_port()
    code = UPSTREAM.format(root=str(Path(__file__).resolve().parent.parent), chunks=args.chunks,
                           delay=args.chunk_delay, port=port)  # fmt: skip
    upstream = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        servers.callback(stop, upstream)
        upstream_url = upstream.stdout.readline().strip()  # type: ignore[union-attr]
        config = {
            "include_defaults": False,
            # Enough upstream connections for every stream (the default pool is 512).
            "backends": {"fake": {"type": "openai", "base_url": upstream_url, "max_connections": 4096}},
            "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "fake", "model": "m"}]}},
        }
        hearth, url, key = start_hearth(Path(tmp), config, args.log_level)
        servers.callback(stop, hearth)
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        print(
            f"\nStreams: a fake upstream sends {args.chunks} chunks {args.chunk_delay * 1000:g} ms apart; "
            f"{args.stream_seconds:g} s per run; direct, then via Hearth"
        )
        head = f"{'N':>6}{'direct p50/p99':>17}{'Hearth p50/p99':>17}{'added p50/p99':>16}"
        print(head + f"{'errors':>9}{'CPU':>7}{'RSS MB start..end (max)':>26}{'client lag p99':>16}")
        for n in args.streams:
            direct = uvloop.run(run(f"{upstream_url}/chat/completions", {}, n, args.stream_seconds, None))
            via = uvloop.run(run(f"{url}/v1/chat/completions", auth, n, args.stream_seconds, hearth.pid))
            errors = sum(via["errors"].values())
            rss = via["rss"]
            print(
                f"{n:>6}{direct['p50']:>8.1f}/{direct['p99']:<8.1f}{via['p50']:>8.1f}/{via['p99']:<8.1f}"
                f"{via['p50'] - direct['p50']:>7.1f}/{via['p99'] - direct['p99']:<8.1f}{errors:>9}"
                f"{via['cpu']:>6.0%} {rss[0]:>10.0f}..{rss[-1]:.0f} ({max(rss):.0f})"
                f"{via['client_lag_p99']:>14.1f} ms"
            )
            if via["errors"] or direct["errors"]:
                print(f"        errors via Hearth: {via['errors']}; direct: {direct['errors']}")
            print(f"        streams completed via Hearth: {via['completed']}, chunk gaps: {via['gaps']}")
