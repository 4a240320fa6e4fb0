"""Agents: the graphs' own time per node (Hearth's work, model calls excluded) against a zero-latency fake
model, p50/p95 per node. Target: <= 5 ms p95 per node.

The platform runs in this process (rag + agents contexts, the embedded MiniLM embedder for retrieval), the
chat and judge aliases point at bench/agents_upstream.py (tests/fake_openai.py in a process of its own, as a
model server is) on loopback answering at once (a scripted good answer, so router runs take the RAG route
and pass the judge). For each step of each run:

    own time = (next step's start - this step's start) - time inside model calls

so it counts the node's own code, LangGraph's scheduling and, with durability "sync", the checkpoint
written after the node; for a run's last node, its own latency minus model time. `retrieve` includes the
query embedding (MiniLM) and the index search: reported, and called out.

Three set-ups run side by side, their runs interleaved (one of each in turn, so machine load hits all
alike), on the same database:
  before: LangGraph's stock saver, durability "sync" (what Hearth shipped first)
  saver:  Hearth's saver (agents/checkpoints.py: fewer thread hops per write), durability "sync"
  after:  Hearth's saver, durability "async" (Hearth's default: the write runs while the next node does)
With "async" the write is not in the node's own time: it overlaps the next node's model call. Its cost is
printed too ("checkpoint writes": each aput_writes + aput, wall time), and the whole run's time.

    .venv/bin/python bench/agents.py [--runs 200] [--crew-runs 50] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway import _start_server  # noqa: E402
from bench.rag import CRANFIELD, EMBED_ONLY  # noqa: E402
from hearth.agents.checkpoints import open_checkpointer  # noqa: E402
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


async def floor(saver: Any, runs: int, durability: str) -> list[float]:
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
        await graph.ainvoke({"n": 0}, {"configurable": {"thread_id": f"floor-{i}"}}, durability=durability)  # type: ignore[arg-type]
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
    parser.add_argument(
        "--setups", default="before,saver,after", help="which set-ups to run, comma-separated (see above)"
    )
    parser.add_argument("--profile", default=None, help="write cProfile stats of the measured runs here")
    args = parser.parse_args()
    cranfield = CRANFIELD if CRANFIELD.exists() else Path("/work/shared/data/cranfield")
    corpus = evaluation.load_corpus(cranfield / "cran.all.1400", "smart")[: args.docs]
    queries = list(evaluation.load_queries(cranfield / "cran.qry", "smart").values())

    upstream, upstream_url = _start_server("bench.agents_upstream")
    config = {
        **EMBED_ONLY,
        "backends": {**EMBED_ONLY["backends"], "up": {"type": "openai", "base_url": upstream_url}},
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
            # As `hearth serve` does once started (app.py): what start-up built is moved out of the
            # collector's sight, else a full collection scans it all, inside whichever node it lands in.
            gc.collect()
            gc.freeze()
            deps = RunDeps(user_id=user, caller=Caller(user_id=user))
            stock = await open_checkpointer(platform.db.url, stock=True)
            mine = agents.runs.graphs
            setups = {
                "before": Setup(
                    {k: g.builder.compile(checkpointer=stock.saver) for k, g in mine.items()}, "sync"
                ),
                "saver": Setup(mine, "sync"),
                "after": Setup(mine, "async"),
            }
            bucket: list[list[float]] = [[]]
            for saver in (stock.saver, mine["router"].checkpointer):
                _time_writes(saver, bucket)

            async def one(setup: Setup, kind: str, i: int) -> list[dict[str, Any]]:
                agents.runs.graphs, agents.runs.durability = setup.graphs, setup.durability
                bucket[0] = setup.writes
                q = queries[i % len(queries)]
                started = time.perf_counter()
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
                steps: list[dict[str, Any]] = last["run"]["result"]["steps"]
                setup.wall[kind].append((time.perf_counter() - started) * 1000)
                for node, own, node_only in own_times(steps):
                    setup.own[kind][node].append(own)
                    setup.inner[kind][node].append(node_only)
                return steps

            setups = {n: setups[n] for n in args.setups.split(",")}
            for setup in setups.values():
                for kind in ("router", "crew"):
                    await one(setup, kind, 0)  # warm up
                setup.clear()
            profiler = cProfile.Profile() if args.profile else None
            if profiler is not None:
                profiler.enable()
            for kind, n in (("router", args.runs), ("crew", args.crew_runs)):
                for i in range(n):
                    for setup in setups.values():  # interleaved: load hits every set-up alike
                        await one(setup, kind, i + 1)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            agents.runs.graphs, agents.runs.durability = mine, "async"
            print(
                f"agents graph overhead per node (model calls excluded), zero-latency fake model; db: "
                f"{platform.db.engine.url.get_backend_name()}; own time p50 / p95 in ms per set-up"
            )
            names = list(setups)
            last = names[-1]
            for kind in ("router", "crew"):
                runs = len(setups[last].wall[kind])
                if not runs:
                    continue
                walls = "  ".join(f"{n} {pct(setups[n].wall[kind], 50):.1f}" for n in names)
                print(f"\n{kind}: {runs} runs per set-up; whole run p50 ms: {walls}")
                print(f"  {'node':<11}" + "".join(f"{n:>16}" for n in names) + f"{'in-node p95':>13}")
                for node in setups[last].own[kind]:
                    cells = "".join(
                        f"{pct(v, 50):>7.2f} /{pct(v, 95):>7.2f}"
                        for v in (setups[n].own[kind][node] for n in names)
                    )
                    print(f"  {node:<11}{cells}{pct(setups[last].inner[kind][node], 95):>12.2f}")
            print()
            summary = {}
            for name, setup in setups.items():
                everything = [
                    v
                    for kind in setup.own
                    for node, vs in setup.own[kind].items()
                    if node not in ("retrieve", "researcher")
                    for v in vs
                ]
                summary[name] = (pct(everything, 50), pct(everything, 95))
                base = await floor(
                    setup.graphs["router"].checkpointer, max(args.runs // 2, 2), setup.durability
                )
                print(
                    f"{name:<7} ({setup.durability} checkpoints): all nodes but retrieve and researcher own "
                    f"time p50 {summary[name][0]:.2f} ms, p95 {summary[name][1]:.2f} ms; checkpoint writes "
                    f"p50 {pct(setup.writes, 50):.2f} ms, p95 {pct(setup.writes, 95):.2f} ms each; floor "
                    f"(no-op nodes, same saver) p50 {pct(base, 50):.2f} ms, p95 {pct(base, 95):.2f} ms"
                )
            await stock.close()
            if "after" in summary and "before" in summary:
                print(
                    f"\nafter / before: p50 x{summary['after'][0] / summary['before'][0]:.2f}, p95 "
                    f"x{summary['after'][1] / summary['before'][1]:.2f}; target p95 <= 5 ms: "
                    f"{'met' if summary['after'][1] <= 5 else 'NOT met'} ({summary['after'][1]:.2f} ms). "
                    "retrieve and researcher run retrieval: the MiniLM query embedding and the search"
                )
        finally:
            await close_platform(platform)
            upstream.terminate()
            upstream.wait(10)


@dataclass
class Setup:
    graphs: dict[str, Any]
    durability: str
    own: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    inner: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    wall: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    writes: list[float] = field(default_factory=list)  # each aput / aput_writes, wall ms

    def clear(self) -> None:
        self.own.clear()
        self.inner.clear()
        self.wall.clear()
        self.writes.clear()


def _time_writes(saver: Any, bucket: list[list[float]]) -> None:
    """Times the saver's two writes into bucket[0] (the set-up now running)."""
    for name in ("aput", "aput_writes"):
        original = getattr(saver, name)

        async def timed(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await _original(*args, **kwargs)
            finally:
                bucket[0].append((time.perf_counter() - started) * 1000)

        setattr(saver, name, timed)


if __name__ == "__main__":
    asyncio.run(main())
