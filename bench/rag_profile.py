"""Where one default RAG query's time goes, end to end inside the server process (issue 13's latency part).

The whole application (auth, middleware, routes, the rag service, the gateway's embedder, the event bus)
runs in this process behind httpx's ASGI transport: no sockets, so what is measured is the server's own
work per request. A Cranfield part is loaded through the bulk ingest route, then the default request
(`{"collection", "query", "top_n": 10, "generate": false}`) is sent for every query, `--rounds` times:

- the medians of the response's `latency_ms` per stage, and of the request's time in the app;
- with `--profile N`, cProfile over the requests, its top N functions by cumulative and by own time.

    .venv/bin/python bench/rag_profile.py [--docs 300] [--rounds 2] [--profile 40]
        [--corpus CISI.ALL --queries CISI.QRY]   (another SMART collection; default Cranfield)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rag import CRANFIELD, EMBED_ONLY  # noqa: E402
from hearth.app import create_app  # noqa: E402
from hearth.config import Settings  # noqa: E402
from hearth.rag import evaluation  # noqa: E402

if not CRANFIELD.exists():  # a worktree beside the main checkout
    CRANFIELD = Path("/work/shared/data/cranfield")


async def run(args: argparse.Namespace, work: Path) -> None:
    config = work / "hearth.yaml"
    config.write_text(yaml.safe_dump(EMBED_ONLY))
    settings = Settings(data_dir=work / "data", config_file=config, log_level="warning")
    app = create_app(settings)
    corpus = [d for d in evaluation.load_corpus(args.corpus, "smart") if d.text.strip()]
    queries = list(evaluation.load_queries(args.queries, "smart").values())
    async with app.router.lifespan_context(app):
        await app.state.platform.auth.ensure_first_admin(data_dir=settings.data_dir)  # as `hearth serve`
        key = (work / "data" / "admin-key.txt").read_text().strip()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hearth", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            (await client.post("/api/rag/collections", json={"name": "p"})).raise_for_status()
            docs = [{"text": d.text, "title": d.title, "source": d.id} for d in corpus[: args.docs]]
            for i in range(0, len(docs), 200):
                r = await client.post(
                    "/api/rag/collections/p/documents/batch", json={"documents": docs[i : i + 200]}
                )
                r.raise_for_status()
            while True:
                r = await client.get(
                    "/api/rag/collections/p/documents", params={"status": "indexed", "limit": 10000}
                )
                if len(r.json()) >= len(docs):
                    break
                await asyncio.sleep(0.5)
            body = {"collection": "p", "top_n": 10, "generate": False}
            for q in queries[:5]:  # warm
                (await client.post("/api/rag/query", json={**body, "query": q})).raise_for_status()
            stages: dict[str, list[float]] = {}
            walls: list[float] = []
            profile = cProfile.Profile() if args.profile else None
            load = os.getloadavg()[0]
            for _ in range(args.rounds):
                for q in queries:
                    if profile:
                        profile.enable()
                    t = time.perf_counter()
                    r = await client.post("/api/rag/query", json={**body, "query": q})
                    walls.append((time.perf_counter() - t) * 1000)
                    if profile:
                        profile.disable()
                    r.raise_for_status()
                    for stage, value in r.json()["latency_ms"].items():
                        stages.setdefault(stage, []).append(value)
            print(f"{len(walls)} requests, load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
            print("in the app, p50:", f"{statistics.median(walls):.2f} ms")
            print("latency_ms p50:", {k: round(statistics.median(v), 2) for k, v in stages.items()})
            if profile:
                stats = pstats.Stats(profile)
                stats.sort_stats("cumulative").print_stats(args.profile)
                stats.sort_stats("tottime").print_stats(args.profile)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--corpus", type=Path, default=CRANFIELD / "cran.all.1400")
    parser.add_argument("--queries", type=Path, default=CRANFIELD / "cran.qry")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N (0: no profile)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
