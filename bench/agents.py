"""Agents: the graphs' own time per node (Hearth's work, model calls excluded) against a zero-latency fake
model, p50/p95 per node. Target: <= 5 ms p95 per node.

The platform runs in this process (rag + agents contexts, the embedded MiniLM embedder for retrieval), the
chat and judge aliases point at tests/fake_openai.py on loopback answering at once (a scripted good answer,
so router runs take the RAG route and pass the judge). For each step of each run:

    own time = (next step's start - this step's start) - time inside model calls

so it counts the node's own code, LangGraph's scheduling and the checkpoint written (synchronously) after
the node; for a run's last node, its own latency minus model time. `retrieve` includes the query embedding
(MiniLM) and the index search: reported, and called out.

    .venv/bin/python bench/agents.py [--runs 200] [--crew-runs 50] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.agents_helpers import Script  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

from bench.rag import CRANFIELD, EMBED_ONLY  # noqa: E402
from hearth.agents.ports import SERVICE as AGENTS  # noqa: E402
from hearth.agents.runtime import RunDeps  # noqa: E402
from hearth.agents.schemas import CrewRequest, RouterRequest  # noqa: E402
from hearth.agents.service import AgentsService  # noqa: E402
from hearth.agents.wiring import CONTEXT as AGENTS_CONTEXT  # noqa: E402
from hearth.auth.service import AuthService  # noqa: E402
from hearth.config import Settings  # noqa: E402
from hearth.gateway.service import Caller  # noqa: E402
from hearth.platform.core import build_platform, close_platform  # noqa: E402
from hearth.rag import evaluation  # noqa: E402
from hearth.rag.ports import SERVICE as RAG  # noqa: E402
from hearth.rag.schemas import TextDocument  # noqa: E402
from hearth.rag.wiring import CONTEXT as RAG_CONTEXT  # noqa: E402


async def floor(saver: Any, runs: int) -> list[float]:
    """Per-node time of a six-node graph whose nodes do nothing, on the same saver with the same
    durability: what LangGraph and the checkpoint write cost by themselves (the floor under Hearth's)."""
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class S(TypedDict, total=False):
        n: int

    async def node(state: S) -> dict[str, int]:
        return {"n": state.get("n", 0) + 1}

    g = StateGraph(S)
    names = [f"n{i}" for i in range(6)]
    for name in names:
        g.add_node(name, node)
    g.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    graph = g.compile(checkpointer=saver)
    per_node = []
    for i in range(runs):
        started = time.perf_counter()
        await graph.ainvoke({"n": 0}, {"configurable": {"thread_id": f"floor-{i}"}}, durability="sync")
        per_node.append((time.perf_counter() - started) * 1000 / len(names))
    return per_node


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def own_times(steps: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    """(node, own ms, node latency ms) per step."""
    out = []
    for i, step in enumerate(steps):
        if i + 1 < len(steps):
            start = datetime.fromisoformat(step["started_at"])
            end = datetime.fromisoformat(steps[i + 1]["started_at"])
            full = (end - start).total_seconds() * 1000
        else:
            full = step["latency_ms"]
        out.append((step["node"], full - step["model_ms"], step["latency_ms"] - step["model_ms"]))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="router runs")
    parser.add_argument("--crew-runs", type=int, default=50)
    parser.add_argument("--docs", type=int, default=50, help="Cranfield documents in the collection")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    cranfield = CRANFIELD if CRANFIELD.exists() else Path("/work/shared/data/cranfield")
    corpus = evaluation.load_corpus(cranfield / "cran.all.1400", "smart")[: args.docs]
    queries = list(evaluation.load_queries(cranfield / "cran.qry", "smart").values())

    upstream = FakeOpenAI().start()
    upstream.keep_bodies = False
    script = Script(
        answers={
            "classify": "factual",
            "answer": "The flow separates near the leading edge [1].",
            "judge": '{"score": 90}',
            "plan": "[]",
            "write": "A cited answer [1].",
            "review": '{"verdict": "approve", "score": 90}',
        }
    )
    script.calls = _Discard()  # type: ignore[assignment]
    upstream.behaviour.script = script
    config = {
        **EMBED_ONLY,
        "backends": {**EMBED_ONLY["backends"], "up": {"type": "openai", "base_url": upstream.url}},
        "aliases": {
            **EMBED_ONLY["aliases"],
            "chat": {"kind": "chat", "deployments": [{"backend": "up", "model": "m0"}]},
            "judge": {"kind": "chat", "deployments": [{"backend": "up", "model": "mj"}]},
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hearth.yaml"
        path.write_text(yaml.safe_dump(config))
        settings = Settings(
            data_dir=Path(tmp) / "data",
            config_file=path,
            retention_sweep_seconds=0,
            database_url=args.database_url,
            agents_mcp_http=False,
        )
        platform = await build_platform(settings, [RAG_CONTEXT, AGENTS_CONTEXT])
        try:
            rag = platform.ports.require(RAG)
            agents: AgentsService = platform.ports.require(AGENTS)
            user = (await AuthService(platform.db).create_user(username="bench")).id
            await rag.create_collection(user_id=user, name="cran")
            await rag.ingest_texts(
                user_id=user,
                collection="cran",
                documents=[
                    TextDocument(text=d.text or d.title or d.id, title=d.title, source=d.id) for d in corpus
                ],
            )
            await rag.wait_idle(timeout=600)
            deps = RunDeps(user_id=user, caller=Caller(user_id=user))

            async def one(kind: str, i: int) -> list[dict[str, Any]]:
                q = queries[i % len(queries)]
                if kind == "router":
                    active = await agents.start_router(
                        deps=deps, request=RouterRequest(query=q, collection="cran")
                    )
                else:
                    active = await agents.start_crew(
                        deps=deps, request=CrewRequest(query=q, collection="cran", tools=["rag_search"])
                    )
                last = await agents.runs.wait(active)
                assert last["type"] == "done", last
                return last["run"]["result"]["steps"]  # type: ignore[no-any-return]

            for kind in ("router", "crew"):
                await one(kind, 0)  # warm up
            results: dict[str, dict[str, list[float]]] = {
                "router": defaultdict(list),
                "crew": defaultdict(list),
            }
            inner: dict[str, dict[str, list[float]]] = {
                "router": defaultdict(list),
                "crew": defaultdict(list),
            }
            wall: dict[str, list[float]] = defaultdict(list)
            for kind, n in (("router", args.runs), ("crew", args.crew_runs)):
                for i in range(n):
                    started = time.perf_counter()
                    steps = await one(kind, i + 1)
                    wall[kind].append((time.perf_counter() - started) * 1000)
                    for node, own, node_only in own_times(steps):
                        results[kind][node].append(own)
                        inner[kind][node].append(node_only)
            print(
                f"agents graph overhead per node (model calls excluded), zero-latency fake model; db: "
                f"{platform.db.engine.url.get_backend_name()}"
            )
            for kind in ("router", "crew"):
                print(f"\n{kind}: {len(wall[kind])} runs, whole run p50 {pct(wall[kind], 50):.1f} ms")
                print(f"  {'node':<11} {'n':>5} {'own p50':>9} {'own p95':>9} {'in-node p95':>12}")
                for node, values in results[kind].items():
                    print(
                        f"  {node:<11} {len(values):>5} {pct(values, 50):>7.2f}ms {pct(values, 95):>7.2f}ms "
                        f"{pct(inner[kind][node], 95):>10.2f}ms"
                    )
            base = await floor(agents.runs.graphs["router"].checkpointer, args.runs)
            print(
                f"\nfloor: a six-node graph of no-op nodes on the same saver (sync checkpoints), per node: "
                f"p50 {pct(base, 50):.2f} ms, p95 {pct(base, 95):.2f} ms"
            )
            everything = [
                v
                for kind in results
                for node, vs in results[kind].items()
                if node not in ("retrieve", "researcher")
                for v in vs
            ]
            print(
                f"\nall nodes but retrieve and researcher: own time p50 {pct(everything, 50):.2f} ms, "
                f"p95 {pct(everything, 95):.2f} ms (target p95 <= 5 ms); both run retrieval: the MiniLM "
                "query embedding and the search"
            )
        finally:
            await close_platform(platform)
            upstream.stop()


class _Discard(list):  # type: ignore[type-arg]
    """The script's call log, kept empty: a benchmark has no use for it."""

    def append(self, item: Any) -> None:
        return None


if __name__ == "__main__":
    asyncio.run(main())
