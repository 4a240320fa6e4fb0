"""`bench/gateway.py --streams N …`: N concurrent streamed chat completions relayed by Hearth from a fake
upstream that sends a chunk every `--chunk-delay` (20 ms), for `--stream-seconds`, each stream starting
again when it ends.

For each N the same streams run straight to the upstream, then through Hearth, with the same client. The
client measures the gap between consecutive chunks of a stream; the delay Hearth adds is the difference of
the two runs' gap percentiles. The harness is built to cost little per chunk, so that it is not what
saturates a small machine: the upstream (bench/stream_upstream.py) writes pre-encoded chunks to every stream
from one timer tick, and the client reads raw bytes (`StreamClient`). Reported: gap p50/p99 direct and via
Hearth, added p50/p99, errors (non-200, a stream without [DONE], a broken connection, a stream over 120 s),
Hearth's CPU (share of one core) and CPU per chunk delivered (µs; request handling included), RSS sampled
ten times over the run, the upstream's and the client's own CPU, stream length and chunks/s (a relay that
falls behind shows there: its gaps are bursts of 0).

`--baseline-src DIR` runs a second Hearth from another source tree and streams N through both at once, so
their CPU per chunk can be compared on the same (loaded) machine.

Target (issue 19) at N = 1,000: added p99 <= 20 ms, no errors, RSS flat over 5 minutes
(`--streams 1000 --stream-seconds 300 --direct-seconds 20`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import uvloop
from tests.harness import free_port

from bench.gateway import ROOT, chat_config, start_hearth, stop
from bench.soak import lag_ticker, percentile, rss_mb

BODY = orjson.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True}
)
TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (`hearth serve --workers N`: the supervisor and its workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its descendants (/proc/PID/stat fields 14, 15)."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, MB."""
    return sum(rss_mb(p) for p in process_tree(pid))


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Record:
    gaps: array = field(default_factory=lambda: array("f"))  # seconds since the stream's previous chunk
    chunks: int = 0
    durations: array = field(default_factory=lambda: array("f"))  # request sent -> end of a whole stream
    requests: int = 0
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lags: array = field(default_factory=lambda: array("d"))  # this client's loop lag, per 10 ms tick

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class StreamClient(asyncio.Protocol):
    """One keep-alive connection streaming completions one after another. It reads raw bytes: a chunk is a
    `data: {` frame, timed when the read that completes it arrives (frames read together get gaps of 0, as
    any client would see them); no HTTP or JSON library runs per chunk, so the client costs little."""

    def __init__(self, request: bytes, rec: Record) -> None:
        self.request = request
        self.rec = rec
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[bool] | None = None
        self.buffer = b""
        self.in_head = True
        self.last: float | None = None
        self.saw_done = False
        self.sent = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> asyncio.Future[bool]:
        """Send the request; the future is True once the stream ended with [DONE], False on an error."""
        self.done = asyncio.get_running_loop().create_future()
        self.buffer, self.in_head, self.last, self.saw_done = b"", True, None, False
        self.sent = time.monotonic()
        self.rec.requests += 1
        self.transport.write(self.request)  # type: ignore[union-attr]
        return self.done

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer + data
        if self.in_head:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 200 "):
                self._end(f"HTTP {buffer[9:12].decode(errors='replace')}")
                self.transport.close()  # type: ignore[union-attr]  # the body is not read: a new connection
                return
            self.in_head = False
            buffer = buffer[end + 4 :]
        frames = buffer.split(b"\n\n")
        self.buffer = frames.pop()
        rec = self.rec
        for frame in frames:
            at = frame.find(b"data: ")
            if at < 0:
                continue
            if frame.startswith(b"[DONE]", at + 6):
                self.saw_done = True
                continue
            if frame.startswith(b'{"error"', at + 6):
                rec.error("error chunk")
            if self.last is not None:
                rec.gaps.append(now - self.last)
            self.last = now
            rec.chunks += 1
        if self.saw_done and self.buffer.endswith(b"0\r\n\r\n"):  # the chunked body's end
            rec.completed += 1
            rec.durations.append(time.monotonic() - self.sent)
            self._end(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._end("connection lost" if self.saw_done is False else "no end of body")

    def _end(self, error: str | None) -> None:
        if self.done is not None and not self.done.done():
            if error:
                self.rec.error(error)
            self.done.set_result(error is None)


def request_bytes(url: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(BODY)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + BODY


async def stream_worker(url: str, headers: dict[str, str], rec: Record, until: float | None) -> None:
    """Streams one completion after another on one connection (a new one after an error) until `until`
    (None: just one)."""
    host, port, request = request_bytes(url, headers)
    loop = asyncio.get_running_loop()
    client: StreamClient | None = None
    try:
        while True:
            if client is None or client.transport is None:
                try:
                    _, client = await loop.create_connection(lambda: StreamClient(request, rec), host, port)
                except OSError as exc:
                    rec.error(type(exc).__name__)
                    await asyncio.sleep(0.1)
                    client = None
                    continue
            try:
                await asyncio.wait_for(client.send(), 120)
            except TimeoutError:
                rec.error("timeout")
                client.transport.close()  # type: ignore[union-attr]
                client = None
            if until is None or time.monotonic() >= until:
                return
    finally:
        if client is not None and client.transport is not None:
            client.transport.close()


async def run(
    url: str, headers: dict[str, str], streams: int, seconds: float, pids: dict[str, int | None]
) -> dict:
    """`streams` workers streaming from `url` for `seconds`; what they saw, the CPU used meanwhile by each
    process in `pids` (None: this one, the client) and the RSS of `pids["hearth"]` when given."""
    rec = Record()
    rss: list[float] = []
    hearth = pids.get("hearth")
    # Warm: open the connections and the code paths once (not measured).
    warm = Record()
    await asyncio.gather(*(stream_worker(url, headers, warm, None) for _ in range(streams)))
    gc.collect()
    gc.freeze()  # the client's own collections must not look like Hearth's delay
    start = time.monotonic()
    until = start + seconds
    cpu0 = {name: cpu_seconds(pid) if pid else own_cpu_seconds() for name, pid in pids.items()}

    async def sampler() -> None:
        if hearth is None:
            return
        for _ in range(10):
            rss.append(tree_rss_mb(hearth))
            await asyncio.sleep(seconds / 10)

    ticker = Record()  # lag_ticker appends to .lags
    await asyncio.gather(
        lag_ticker(ticker, until),
        sampler(),
        *(stream_worker(url, headers, rec, until) for _ in range(streams)),
    )
    elapsed = time.monotonic() - start
    cpu = {
        name: ((cpu_seconds(pid) if pid else own_cpu_seconds()) - cpu0[name]) / elapsed
        for name, pid in pids.items()
    }
    if hearth:
        rss.append(tree_rss_mb(hearth))
    gc.unfreeze()
    gaps = sorted(g * 1000 for g in rec.gaps)
    lags = sorted(lag * 1000 for lag in ticker.lags)
    durations = sorted(rec.durations)
    return {
        "duration_p50": percentile(durations, 50),
        "duration_p99": percentile(durations, 99),
        "p50": percentile(gaps, 50),
        "p99": percentile(gaps, 99),
        "gaps": len(gaps),
        "chunks": rec.chunks,
        "chunks_per_s": rec.chunks / elapsed,
        "completed": rec.completed,
        "errors": dict(rec.errors),
        "cpu": cpu,
        "us_per_chunk": (cpu["hearth"] * elapsed / rec.chunks * 1e6) if hearth and rec.chunks else None,
        "rss": rss,
        "client_lag_p99": percentile(lags, 99),
    }


def compare(args: argparse.Namespace, tmp: Path, config: dict, stack: contextlib.ExitStack) -> None:
    """This Hearth and one from `--baseline-src`, each relaying N streams at the same time from the same
    upstream, so that both see the same machine: their CPU per chunk side by side (the ratio is the figure
    that survives a loaded machine)."""
    servers = {}
    for name, src in (("this", None), ("baseline", args.baseline_src)):
        (tmp / name).mkdir()
        proc, url, key = start_hearth(tmp / name, config, args.log_level, src=src, workers=args.workers)
        stack.callback(stop, proc)
        servers[name] = (proc, f"{url}/v1/chat/completions", {"Authorization": f"Bearer {key}"})
    print(f"\nSide by side: this tree vs {args.baseline_src}, N streams through each at once")
    print(
        f"{'N':>6}{'this us/chunk':>15}{'baseline us/chunk':>19}{'ratio':>8}"
        f"{'this p50/p99':>16}{'baseline p50/p99':>19}"
    )
    for n in args.streams:

        async def both(n: int = n) -> list[dict]:
            return await asyncio.gather(
                *(
                    run(url, auth, n, args.stream_seconds, {"hearth": proc.pid})
                    for proc, url, auth in servers.values()
                )
            )

        this, base = uvloop.run(both())
        print(
            f"{n:>6}{this['us_per_chunk']:>15.1f}{base['us_per_chunk']:>19.1f}"
            f"{this['us_per_chunk'] / base['us_per_chunk']:>7.2f}x"
            f"{this['p50']:>8.1f}/{this['p99']:<7.1f}{base['p50']:>10.1f}/{base['p99']:<8.1f}"
        )
        for label, result in (("this", this), ("baseline", base)):
            if result["errors"]:
                print(f"        errors via {label}: {result['errors']}")


def run_streams(args: argparse.Namespace) -> None:
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_upstream", str(port), str(args.chunks), str(args.chunk_delay)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        servers.callback(stop, upstream)
        upstream_url = upstream.stdout.readline().strip()  # type: ignore[union-attr]
        # Enough upstream connections for every stream (the default pool is 512).
        config = chat_config(upstream_url, max_connections=4096)
        if args.baseline_src:
            compare(args, Path(tmp), config, servers)
            return
        hearth, url, key = start_hearth(Path(tmp), config, args.log_level, workers=args.workers)
        servers.callback(stop, hearth)
        auth = {"Authorization": f"Bearer {key}"}
        direct_seconds = args.direct_seconds or args.stream_seconds
        print(
            f"\nStreams: a fake upstream (bench/stream_upstream.py) sends {args.chunks} chunks "
            f"{args.chunk_delay * 1000:g} ms apart; direct for {direct_seconds:g} s, then via Hearth for "
            f"{args.stream_seconds:g} s; CPU as a share of one core"
        )
        head = f"{'N':>6}{'direct p50/p99':>17}{'Hearth p50/p99':>17}{'added p50/p99':>16}{'errors':>8}"
        print(head + f"{'Hearth CPU':>11}{'us/chunk':>9}{'RSS MB start..end (max)':>25}")
        for n in args.streams:
            direct = uvloop.run(
                run(
                    f"{upstream_url}/chat/completions",
                    {},
                    n,
                    direct_seconds,
                    {"upstream": upstream.pid, "client": None},
                )
            )
            pids = {"upstream": upstream.pid, "client": None, "hearth": hearth.pid}
            via = uvloop.run(run(f"{url}/v1/chat/completions", auth, n, args.stream_seconds, pids))
            errors = sum(via["errors"].values())
            rss = via["rss"]
            print(
                f"{n:>6}{direct['p50']:>8.1f}/{direct['p99']:<8.1f}{via['p50']:>8.1f}/{via['p99']:<8.1f}"
                f"{via['p50'] - direct['p50']:>7.1f}/{via['p99'] - direct['p99']:<8.1f}{errors:>8}"
                f"{via['cpu']['hearth']:>10.0%}{via['us_per_chunk']:>9.0f}"
                f"{rss[0]:>12.0f}..{rss[-1]:.0f} ({max(rss):.0f})"
            )
            if via["errors"] or direct["errors"]:
                print(f"        errors via Hearth: {via['errors']}; direct: {direct['errors']}")
            d_cpu, v_cpu = direct["cpu"], via["cpu"]
            print(
                f"        harness CPU direct / via Hearth: upstream {d_cpu['upstream']:.0%} / "
                f"{v_cpu['upstream']:.0%}, client {d_cpu['client']:.0%} / {v_cpu['client']:.0%}; "
                f"client loop lag p99 {direct['client_lag_p99']:.1f} / {via['client_lag_p99']:.1f} ms"
            )
            print(
                f"        stream length p50/p99 direct {direct['duration_p50']:.2f}/"
                f"{direct['duration_p99']:.2f} s, via Hearth {via['duration_p50']:.2f}/"
                f"{via['duration_p99']:.2f} s (a relay that falls behind delivers in bursts: gaps of 0, "
                "longer streams)"
            )
            print(
                f"        chunks/s direct / via Hearth: {direct['chunks_per_s']:.0f} / "
                f"{via['chunks_per_s']:.0f} (about {n / args.chunk_delay:.0f} if all keep up); streams "
                f"completed via Hearth: {via['completed']}; "
                f"RSS samples: {', '.join(f'{r:.0f}' for r in rss)}"
            )
