"""Soak: many concurrent chat streams through a Hearth server against a fake streaming upstream, for a long
while, reporting what a user of a long-running gateway would notice.

    .venv/bin/python bench/soak.py                 # 64 streams for 600 s
    .venv/bin/python bench/soak.py --seconds 120   # shorter, on a shared machine
    .venv/bin/python bench/soak.py --probe         # also: Hearth's GC pauses and event-loop lags, and where

Reported: requests and errors (a non-200, a stream without `[DONE]`, a broken connection), the gaps between
consecutive chunks of a stream (p50/p95/p99/max; the upstream sends one every `--chunk-delay`), process-wide
stalls (moments when more than `--stall-share` of the streams wait longer than `--stall-ms` at once, which no
single slow stream explains), Hearth's RSS at start/middle/end, and this client's own event-loop lag (a
stall seen there is the client's, not Hearth's). With `--probe`, Hearth runs with a `gc.callbacks` hook that
logs every collection over 20 ms and a thread that logs each event-loop lag over 80 ms with the stack its
thread was in at that moment; the report sets the stalls beside both."""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

from bench.gateway import chat_config, hearth_env, stop, wait_ready  # noqa: E402

UPSTREAM = """
import sys, threading
sys.path.insert(0, {root!r})
from tests.fake_openai import Behaviour, FakeOpenAI
server = FakeOpenAI(Behaviour(stream_chunks={chunks}, chunk_delay={delay})).start({port})
server.keep_bodies = False  # a soak must not grow the fake's memory
print(server.url, flush=True)
threading.Event().wait()
"""

# Runs `hearth serve` with two probes: a `gc.callbacks` hook that prints every collection over 20 ms, and a
# thread that pings the server's event loop every 10 ms and, when a ping waits over 80 ms, prints where the
# loop's thread is at that moment (and whether a collection is running): the cause of a stall, not a guess.
PROBED_SERVE = """
import gc, sys, threading, time, traceback
state = {"gc": 0.0, "in_gc": False}
def _timed(phase, info):
    if phase == "start":
        state["gc"], state["in_gc"] = time.perf_counter(), True
        return
    state["in_gc"] = False
    ms = (time.perf_counter() - state["gc"]) * 1000
    if ms > 20:
        print(f"GC gen={info['generation']} ms={ms:.1f} at={time.time():.3f} collected={info['collected']}",
              file=sys.stderr, flush=True)
gc.callbacks.append(_timed)

def _watch(loop, ident):
    while True:
        pinged, start = threading.Event(), time.perf_counter()
        loop.call_soon_threadsafe(pinged.set)
        if not pinged.wait(0.08):
            frame = sys._current_frames().get(ident)
            stack = traceback.extract_stack(frame) if frame else []
            # The innermost frames, then the innermost of Hearth's own: what ran, and which code of ours.
            picked = stack[-3:][::-1] + [f for f in stack[:-3] if "/hearth/" in f.filename][::-1][:3]
            where = " < ".join(f"{f.name}@{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in picked)
            in_gc = state["in_gc"]
            pinged.wait()
            ms = (time.perf_counter() - start) * 1000
            print(f"LAG ms={ms:.0f} at={time.time():.3f} in_gc={in_gc} where={where}",
                  file=sys.stderr, flush=True)
        time.sleep(0.01)

import asyncio
import hearth.app
_create = hearth.app.create_app
def create_app(*args, **kwargs):
    app = _create(*args, **kwargs)
    started = []
    async def probed(scope, receive, send):
        if not started and scope["type"] == "http":  # after start-up (the lifespan scope comes first)
            started.append(1)
            print(f"OBJECTS n={len(gc.get_objects())} frozen={gc.get_freeze_count()}",
                  file=sys.stderr, flush=True)
            threading.Thread(target=_watch, args=(asyncio.get_running_loop(), threading.get_ident()),
                             daemon=True).start()
        await app(scope, receive, send)
    return probed
hearth.app.create_app = create_app
sys.argv = ["hearth", "serve"]
from hearth.cli.main import app
app()
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Record:
    ends: array = field(default_factory=lambda: array("d"))  # when a chunk arrived (monotonic)
    gaps: array = field(default_factory=lambda: array("d"))  # seconds since the stream's previous chunk
    streams: array = field(default_factory=lambda: array("i"))  # which stream
    requests: int = 0
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lags: array = field(default_factory=lambda: array("d"))  # this client's loop lag, per 10 ms tick

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict, sid: int, rec: Record
) -> None:
    rec.requests += 1
    last: float | None = None
    done = False
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                rec.error(f"HTTP {resp.status}")
                await resp.read()
                return
            async for line in resp.content:
                now = time.monotonic()
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b"data: {"):
                    if b'"error"' in line[:20]:
                        rec.error("error chunk")
                    if last is not None:
                        rec.ends.append(now)
                        rec.gaps.append(now - last)
                        rec.streams.append(sid)
                    last = now
    except (TimeoutError, aiohttp.ClientError) as exc:
        rec.error(type(exc).__name__)
        return
    if done:
        rec.completed += 1
    else:
        rec.error("no [DONE]")


async def lag_ticker(rec: Record, until: float) -> None:
    while time.monotonic() < until:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        rec.lags.append(time.monotonic() - before - 0.01)


async def soak(
    url: str, key: str, pid: int, args: argparse.Namespace
) -> tuple[Record, dict[str, float], float]:
    """Run the streams; returns what they saw, Hearth's RSS samples and the run's start (wall clock)."""
    body = orjson.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True}
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rec = Record()
    rss: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm = Record()
        await asyncio.gather(*(one_stream(session, url, body, headers, i, warm) for i in range(args.streams)))
        # The client's own objects stay out of its collections: a client GC pause would look like a stall.
        gc.collect()
        gc.freeze()
        start = time.monotonic()
        start_wall = time.time()
        until = start + args.seconds
        rss["start"] = rss_mb(pid)

        async def worker(sid: int) -> None:
            while time.monotonic() < until:
                await one_stream(session, url, body, headers, sid, rec)

        async def sampler() -> None:
            await asyncio.sleep(args.seconds / 2)
            rss["middle"] = rss_mb(pid)

        await asyncio.gather(lag_ticker(rec, until), sampler(), *(worker(i) for i in range(args.streams)))
        rss["end"] = rss_mb(pid)
        rec.ends = array("d", (e - start for e in rec.ends))
    return rec, rss, start_wall


@dataclass
class Stall:
    at: float  # seconds into the run when the streams resumed
    streams: int
    gap_ms: float  # the median gap of the streams it held


def stalls(rec: Record, streams: int, threshold: float, share: float, window: float = 0.05) -> list[Stall]:
    """Clusters of long gaps that end together (within `window`) on more than `share` of the streams."""
    long = sorted(
        (rec.ends[i], rec.gaps[i], rec.streams[i]) for i in range(len(rec.gaps)) if rec.gaps[i] > threshold
    )
    found: list[Stall] = []
    i = 0
    while i < len(long):
        j = i
        while j < len(long) and long[j][0] - long[i][0] <= window:
            j += 1
        held = {s for _, _, s in long[i:j]}
        if len(held) > share * streams:
            found.append(Stall(long[i][0], len(held), statistics.median(g for _, g, _ in long[i:j]) * 1000))
            i = j
        else:
            i += 1
    return found


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def read_probes(path: Path, started_wall: float) -> tuple[list[tuple[float, int, float]], list[str]]:
    """From Hearth's log: (seconds since the run's start, generation, pause ms) of each collection over
    20 ms, and the event-loop lags over 80 ms (with where the loop was) during the run."""
    pauses, lags = [], []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("GC gen="):
            parts = dict(p.split("=", 1) for p in line[3:].split())
            pauses.append((float(parts["at"]) - started_wall, int(parts["gen"]), float(parts["ms"])))
        elif line.startswith("OBJECTS "):
            print(f"Hearth's GC-tracked objects at its first request: {line[8:]}")
        elif line.startswith("LAG "):
            at = float(line.split(" at=")[1].split()[0]) - started_wall
            lags.append(f"{at:7.2f} s {line[4:].split(' at=')[0]} {line.split(' in_gc=')[1]}")
    return pauses, lags


def report(
    rec: Record,
    rss: dict[str, float],
    args: argparse.Namespace,
    gc_pauses: list[tuple[float, int, float]] | None,
    hearth_lags: list[str] | None,
) -> None:
    gaps = sorted(g * 1000 for g in rec.gaps)
    found = stalls(rec, args.streams, args.stall_ms / 1000, args.stall_share)
    lags = sorted(lag * 1000 for lag in rec.lags)
    print(
        f"\nSoak: {args.streams} streams x {args.seconds:g} s through Hearth, fake upstream sending "
        f"{args.chunks} chunks {args.chunk_delay * 1000:g} ms apart"
    )
    print(f"streams: {rec.requests} started, {rec.completed} completed, errors: {rec.errors or 0}")
    print(
        f"inter-chunk gap (ms, {len(gaps)} gaps): p50 {percentile(gaps, 50):.1f}"
        f"  p95 {percentile(gaps, 95):.1f}  p99 {percentile(gaps, 99):.1f}"
        f"  max {gaps[-1] if gaps else float('nan'):.1f}"
    )
    share = f"> {args.stall_share:.0%} of streams waiting > {args.stall_ms:g} ms at once"
    print(f"process-wide stalls ({share}): {len(found)}")
    for s in found[:12]:
        print(f"  at {s.at:7.2f} s: {s.streams} streams held, median gap {s.gap_ms:.0f} ms")
    if len(found) > 1:
        between = [b.at - a.at for a, b in itertools.pairwise(found)]
        print(f"  time between stalls (s): median {statistics.median(between):.1f}, min {min(between):.1f}")
    print(
        "Hearth RSS (MB): " + ", ".join(f"{k} {rss[k]:.0f}" for k in ("start", "middle", "end") if k in rss)
    )
    print(
        f"client loop lag (ms): p99 {percentile(lags, 99):.1f}, max {lags[-1] if lags else 0:.1f}, "
        f"ticks over 50 ms: {sum(1 for lag in lags if lag > 50)}"
    )
    if gc_pauses is not None:
        full = [p for p in gc_pauses if p[1] == 2]
        print(
            f"Hearth GC pauses over 20 ms: {len(gc_pauses)} (generation 2: {len(full)}, "
            f"median {statistics.median([p[2] for p in full]) if full else 0:.0f} ms)"
        )
        during = [p for p in gc_pauses if 0 <= p[0] <= args.seconds]
        full_during = [f"{ms:.0f}" for _, gen, ms in during if gen == 2]
        print(
            f"  full (generation 2) collections over 20 ms during the run: {len(full_during)}: {full_during}"
        )
        print(
            f"  during the run: {len(during)}: "
            + ", ".join(f"{at:.2f} s gen{gen} {ms:.0f} ms" for at, gen, ms in during[:12])
        )
        times = [p[0] for p in gc_pauses]
        explained = 0
        for s in found:
            # A pause that ended within 0.3 s before the streams resumed explains the stall.
            k = bisect.bisect_right(times, s.at)
            if any(s.at - times[m] < 0.3 for m in range(max(0, k - 3), k)):
                explained += 1
        print(f"stalls that follow a logged GC pause: {explained} of {len(found)}")
    if hearth_lags is not None:
        print(f"Hearth event-loop lags over 80 ms (where its thread was): {len(hearth_lags)}")
        for line in hearth_lags[:15]:
            print("  " + line[:400])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to soak (default 600)")
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams (default 64)")
    parser.add_argument("--chunks", type=int, default=100, help="chunks per streamed reply")
    parser.add_argument("--chunk-delay", type=float, default=0.02, help="seconds between upstream chunks")
    parser.add_argument("--stall-ms", type=float, default=100.0)
    parser.add_argument("--stall-share", type=float, default=0.5)
    parser.add_argument("--log-level", default="WARNING", help="Hearth's log level")
    parser.add_argument(
        "--probe", action="store_true", help="log Hearth's GC pauses and event-loop lags (with where)"
    )
    args = parser.parse_args()

    port = free_port()
    code = UPSTREAM.format(root=str(ROOT), chunks=args.chunks, delay=args.chunk_delay, port=port)
    upstream = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        servers.callback(stop, upstream)
        upstream_url = upstream.stdout.readline().strip()  # type: ignore[union-attr]
        workdir = Path(tmp)
        hearth_port = free_port()
        env = hearth_env(workdir, chat_config(upstream_url), args.log_level, hearth_port)
        command = [sys.executable, "-c", PROBED_SERVE] if args.probe else [sys.executable, "-m", "hearth"]
        if not args.probe:
            command.append("serve")
        log_path = workdir / "hearth.log"
        with open(log_path, "w") as log:
            hearth = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
        servers.callback(stop, hearth)
        url = f"http://127.0.0.1:{hearth_port}"
        wait_ready(f"{url}/readyz", hearth)
        key = (workdir / "data" / "admin-key.txt").read_text().strip()
        rec, rss, start_wall = uvloop.run(soak(f"{url}/v1/chat/completions", key, hearth.pid, args))
        gc_pauses, lags = read_probes(log_path, start_wall) if args.probe else (None, None)
        report(rec, rss, args, gc_pauses, lags)


if __name__ == "__main__":
    main()
