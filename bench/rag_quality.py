"""RAG retrieval quality and query latency through the HTTP API, as a user meets them (issue 13's table).

A `hearth serve` is started, the collection is loaded through `hearth rag load` (the bulk ingest API), and
each query is sent to `POST /api/rag/query` in four requests, taking turns query by query so a change in
the machine's load hits every row alike:

    defaults             {"collection", "query", "top_n": 10, "generate": false}   (rerank on, top_k 10)
    rerank off, top_k 10 {..., "top_k": 10, "top_n": 10, "rerank": false}
    rerank off, top_k 100 {..., "top_k": 100, "top_n": 100, "rerank": false}
    rerank on, top_k 30  {..., "top_k": 30, "top_n": 30}

Each query's sources are folded into documents at their best chunk's rank; nDCG@10 is over those documents.
Latency is the request's round trip at the client, p50 over the queries.

With `--before SRC` (the `src` folder of another checkout, e.g. `git archive main src | tar -x -C /tmp/x`)
a second server runs that code on the same data directory, without an ingestion worker, and every row is
measured on both servers in the same run, turn by turn.

    .venv/bin/python bench/rag_quality.py [--corpus cran.all.1400 --queries cran.qry --qrels cranqrel]
        [--format smart] [--before /tmp/before/src] [--data DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rag import CRANFIELD, EMBED_ONLY  # noqa: E402
from hearth.rag import evaluation  # noqa: E402

ROWS: dict[str, dict[str, Any]] = {
    "defaults (rerank on, top_k 10, top_n 10)": {"top_n": 10},
    "rerank off, top_k 10": {"top_k": 10, "top_n": 10, "rerank": False},
    "rerank off, top_k 100": {"top_k": 100, "top_n": 100, "rerank": False},
    "rerank on, top_k 30, top_n 30": {"top_k": 30, "top_n": 30},
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: Path, data: Path, src: Path, *, worker: bool) -> tuple[subprocess.Popen, str]:
    """`hearth serve` running the code in `src` on `data`, once ready."""
    port = free_port()
    (workdir / "hearth.yaml").write_text(yaml.safe_dump(EMBED_ONLY))
    env = dict(
        os.environ,
        PYTHONPATH=str(src),
        HEARTH_DATA_DIR=str(data),
        HEARTH_PORT=str(port),
        HEARTH_CONFIG_FILE=str(workdir / "hearth.yaml"),
        HEARTH_LOG_LEVEL="warning",
        HEARTH_RAG_WORKER="true" if worker else "false",
        OMP_WAIT_POLICY="PASSIVE",
    )
    log = open(workdir / "hearth.log", "a")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth", "serve"], cwd=workdir, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode}); see {workdir / 'hearth.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never became ready")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=CRANFIELD / "cran.all.1400")
    parser.add_argument("--queries", type=Path, default=CRANFIELD / "cran.qry")
    parser.add_argument("--qrels", type=Path, default=CRANFIELD / "cranqrel")
    parser.add_argument("--format", default="smart", help="smart or beir")
    parser.add_argument("--before", type=Path, help="another checkout's src folder, measured beside this one")
    parser.add_argument(
        "--data",
        type=Path,
        help="a data directory, kept: loaded on the first run (while it does not exist), reused after",
    )
    parser.add_argument("--rounds", type=int, default=1, help="send every query this many times per row")
    parser.add_argument(
        "--before-queries", type=int, default=0, help="send only the first N queries to --before (0: all)"
    )
    args = parser.parse_args()
    if not args.corpus.exists():
        fallback = Path("/work/shared/data/cranfield")
        args.corpus, args.queries, args.qrels = (
            fallback / p.name for p in (args.corpus, args.queries, args.qrels)
        )
    topics = evaluation.load_queries(args.queries, args.format)
    qrels = evaluation.load_qrels(args.qrels, args.format)
    judged = {q: t for q, t in topics.items() if qrels.get(q)}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data or work / "data"
        loaded = args.data is not None and args.data.exists()
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        try:
            servers["now"] = start(work, data, ROOT / "src", worker=True)
            url = servers["now"][1]
            key = (data / "admin-key.txt").read_text().strip()
            if not loaded:
                started = time.perf_counter()
                load = ["rag", "load", str(args.corpus), "--collection", "bench", "--format", args.format]
                subprocess.run(
                    [sys.executable, "-m", "hearth", *load, "--url", url, "--api-key", key],
                    env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                spent = time.perf_counter() - started
                print(f"loaded {args.corpus} through `hearth rag load` in {spent:.0f} s")
            if args.before:
                servers["before"] = start(work, data, args.before, worker=False)
            clients = {
                name: httpx.Client(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=120)
                for name, (_proc, u) in servers.items()
            }
            runs: dict[tuple[str, str], dict[str, list[str]]] = {}
            times: dict[tuple[str, str], list[float]] = {}
            for client in clients.values():  # warm: index loads, first-call costs
                for body in ROWS.values():
                    q = {"collection": "bench", "query": "warm up", "generate": False, **body}
                    client.post("/api/rag/query", json=q).raise_for_status()
            load = os.getloadavg()[0]
            stages: dict[tuple[str, str], dict[str, list[float]]] = {}
            turns = [(r, q) for r in range(args.rounds) for q in judged.items()]
            for turn, (_round, (qid, text)) in enumerate(turns):
                # Which server goes first alternates: each server's first request of a turn follows the
                # other's last one (whose threads may still be busy) equally often.
                order = list(clients.items())
                if turn % 2:
                    order.reverse()
                for name, client in order:
                    if name == "before" and args.before_queries and turn >= args.before_queries:
                        continue
                    for row, body in ROWS.items():
                        request = {"collection": "bench", "query": text, "generate": False, **body}
                        t = time.perf_counter()
                        response = client.post("/api/rag/query", json=request)
                        elapsed = (time.perf_counter() - t) * 1000
                        response.raise_for_status()
                        sources = response.json()["sources"]
                        runs.setdefault((name, row), {})[qid] = evaluation.documents_in_order(
                            s["metadata"].get("source", s["document_id"]) for s in sources
                        )
                        times.setdefault((name, row), []).append(elapsed)
                        for stage, value in response.json()["latency_ms"].items():
                            stages.setdefault((name, row), {}).setdefault(stage, []).append(value)
            print(
                f"{args.corpus.name}: {len(judged)} judged queries, load average {load:.1f} before, "
                f"{os.getloadavg()[0]:.1f} after"
            )
            if args.before_queries and "before" in clients:
                print(f"before: the first {args.before_queries} queries only ('now, same': now on those)")
                clients = {"now": clients["now"], "now, same": clients["now"], "before": clients["before"]}
                for row in ROWS:
                    first = list(runs[("before", row)])
                    runs[("now, same", row)] = {q: runs[("now", row)][q] for q in first}
                    times[("now, same", row)] = times[("now", row)][: len(first)]
            header = "| request | " + " | ".join(f"{n}: nDCG@10 | {n}: query p50" for n in clients) + " |"
            print(header)
            print("|---" * (1 + 2 * len(clients)) + "|")
            for row in ROWS:
                cells = []
                for name in clients:
                    judged_here = {q: qrels[q] for q in runs[(name, row)]}
                    score = evaluation.score(runs[(name, row)], judged_here).ndcg10
                    cells += [f"{score:.4f}", f"{statistics.median(times[(name, row)]):.1f} ms"]
                print(f"| {row} | " + " | ".join(cells) + " |")
            print("\nserver-side latency_ms, p50 (embed / search / rerank / total):")
            for row in ROWS:
                cells = []
                for name in dict.fromkeys(n for n, _r in stages):
                    got = stages[(name, row)]
                    keys = ("embed", "search", "rerank", "total")
                    parts = [statistics.median(got.get(k, [0.0])) for k in keys]
                    cells.append(f"{name}: " + " / ".join(f"{v:.1f}" for v in parts))
                print(f"| {row} | " + " | ".join(cells) + " |")
        finally:
            for proc, _url in servers.values():
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
