"""Where the 1-connection tail comes from (issue 19): requests one at a time through a probed Hearth, each
one's latency set beside what Hearth's event-loop thread did meanwhile.

    .venv/bin/python bench/latency_probe.py --requests 3000
    .venv/bin/python bench/latency_probe.py --requests 3000 --env HEARTH_WORKFLOWS_EXECUTOR=false

For every request the client reads /proc/PID/task/PID/schedstat of Hearth's main thread before and after,
so it knows how long that thread ran (CPU) and how long it was runnable but waiting for a core (run-queue
wait); Hearth itself logs every garbage collection over 0.3 ms and, with --lags, every moment its loop did
not answer a ping within 2 ms (with the stack it was in). A slow request (over p50 + 2 ms) is then put down
to: the run queue (the machine's other processes had the cores), GC, a loop lag, or Hearth's own CPU (over
2 ms of it for one request), else waiting on something outside Hearth (the upstream or the client, on a
shared machine themselves descheduled)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import free_port  # noqa: E402

from bench.gateway import CHAT, chat_config, hearth_env, start_upstream, stop, wait_ready  # noqa: E402
from bench.loadgen import _read_response, build_request  # noqa: E402

PROBED_SERVE = """
import asyncio, gc, os, sys, threading, time, traceback
state = {}
def _timed(phase, info):
    if phase == "start":
        state["t"], state["w"] = time.perf_counter(), time.time()
        return
    ms = (time.perf_counter() - state["t"]) * 1000
    if ms > 0.3:
        print(f"GC gen={info['generation']} ms={ms:.2f} at={state['w']:.4f}", file=sys.stderr, flush=True)
gc.callbacks.append(_timed)

def _watch(loop, ident):
    while True:
        pinged, start, wall = threading.Event(), time.perf_counter(), time.time()
        loop.call_soon_threadsafe(pinged.set)
        if not pinged.wait(0.002):
            frame = sys._current_frames().get(ident)
            stack = traceback.extract_stack(frame)[-4:][::-1] if frame else []
            where = " < ".join(f"{f.name}@{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in stack)
            pinged.wait()
            ms = (time.perf_counter() - start) * 1000
            print(f"LAG ms={ms:.1f} at={wall:.4f} where={where}", file=sys.stderr, flush=True)
        time.sleep(0.005)

import hearth.app
_create = hearth.app.create_app
def create_app(*args, **kwargs):
    app = _create(*args, **kwargs)
    started = []
    async def probed(scope, receive, send):
        if not started and scope["type"] == "http" and os.environ.get("PROBE_LAGS"):
            started.append(1)
            threading.Thread(target=_watch, args=(asyncio.get_running_loop(), threading.get_ident()),
                             daemon=True).start()
        await app(scope, receive, send)
    return probed
hearth.app.create_app = create_app
sys.argv = ["hearth", "serve"]
from hearth.cli.main import app
app()
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def schedstat(path: str | None) -> list[str]:
    """A thread's CPU time and run-queue wait so far (ns), from /proc (a read of a few µs: the loop may)."""
    return Path(path).read_text().split() if path else ["0", "0"]


async def one_at_a_time(
    url: str, headers: dict[str, str], n: int, pid: int | None
) -> list[tuple[float, ...]]:
    """(wall time at start, latency, run-queue wait, CPU) per request, in seconds."""
    host, port, request = build_request(url, CHAT, headers)
    reader, writer = await asyncio.open_connection(host, port)
    sched = f"/proc/{pid}/task/{pid}/schedstat" if pid else None
    out = []
    for _ in range(n):
        before = schedstat(sched)
        wall, t0 = time.time(), time.perf_counter()
        writer.write(request)
        await _read_response(reader)
        latency = time.perf_counter() - t0
        after = schedstat(sched)
        cpu, wait = (int(after[i]) - int(before[i]) for i in (0, 1))
        out.append((wall, latency, wait / 1e9, cpu / 1e9))
    writer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--lags", action="store_true", help="also ping Hearth's loop every 5 ms (adds load)")
    parser.add_argument("--log-level", default="INFO", help="Hearth's log level (INFO logs every request)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="for Hearth")
    args = parser.parse_args()

    upstream, direct = start_upstream("raw-asyncio")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        env = hearth_env(
            workdir,
            chat_config(direct),
            args.log_level,
            port,
            **({"PROBE_LAGS": "1"} if args.lags else {}),
            **dict(item.split("=", 1) for item in args.env),
        )
        log_path = workdir / "hearth.log"
        with open(log_path, "w") as log:
            hearth = subprocess.Popen([sys.executable, "-c", PROBED_SERVE], cwd=workdir, env=env, stdout=log,
                                      stderr=log)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(f"{url}/readyz", hearth)
            auth = {"Authorization": f"Bearer {(workdir / 'data' / 'admin-key.txt').read_text().strip()}"}

            async def run() -> tuple[list, list]:
                await one_at_a_time(f"{url}/v1/chat/completions", auth, 300, None)  # warm
                d = await one_at_a_time(f"{direct}/chat/completions", {}, args.requests, None)
                h = await one_at_a_time(f"{url}/v1/chat/completions", auth, args.requests, hearth.pid)
                return d, h

            direct_runs, runs = uvloop.run(run())
            time.sleep(0.3)
        finally:
            stop(hearth)
            stop(upstream)
        events = []
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(("GC ", "LAG ")):
                events.append((float(line.split(" at=")[1].split()[0]), line))
    d_lat = [r[1] * 1000 for r in direct_runs]
    h_lat = [r[1] * 1000 for r in runs]
    p50 = percentile(h_lat, 50)
    print(f"\n{args.requests} requests one at a time; load average {os.getloadavg()[0]:.1f}")
    print(
        f"direct p50/p99 {percentile(d_lat, 50):.2f}/{percentile(d_lat, 99):.2f} ms; via Hearth "
        f"{p50:.2f}/{percentile(h_lat, 99):.2f} ms; added p50/p99 {p50 - percentile(d_lat, 50):.2f}/"
        f"{percentile(h_lat, 99) - percentile(d_lat, 99):.2f} ms"
    )
    cpu = [r[3] * 1000 for r in runs]
    wait = [r[2] * 1000 for r in runs]
    print(
        f"Hearth's loop thread per request: CPU p50/p99/max {percentile(cpu, 50):.2f}/"
        f"{percentile(cpu, 99):.2f}/{max(cpu):.2f} ms; run-queue wait p50/p99 {percentile(wait, 50):.2f}/"
        f"{percentile(wait, 99):.2f} ms"
    )
    start, end = runs[0][0], runs[-1][0] + runs[-1][1]
    gcs = [line for at, line in events if start <= at <= end and line.startswith("GC")]
    gc_ms = [float(line.split("ms=")[1].split()[0]) for line in gcs]
    print(f"GC collections over 0.3 ms during the run: {len(gcs)} (max {max(gc_ms, default=0):.2f} ms)")
    causes: Counter[str] = Counter()
    slow = [r for r in runs if r[1] * 1000 > p50 + 2]
    for wall, latency, queued, used in slow:
        near = [line for at, line in events if wall - 0.001 <= at <= wall + latency]
        excess = latency * 1000 - p50
        if queued * 1000 >= excess / 2:
            causes["run queue (another process had the core)"] += 1
        elif any(line.startswith("GC") for line in near):
            causes["GC"] += 1
        elif near:
            causes["loop lag"] += 1
        elif used > 0.002:
            causes["Hearth's own CPU over 2 ms"] += 1
        else:
            causes["waiting outside Hearth (upstream or client)"] += 1
    print(f"slow requests (over p50 + 2 ms): {len(slow)} of {len(runs)}")
    for cause, count in causes.most_common():
        print(f"  {count:5}  {cause}")


if __name__ == "__main__":
    main()
