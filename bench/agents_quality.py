"""Agents quality: Cranfield questions through the query router over the Cranfield collection, with the
embedded models (SmolLM2 classifies, answers and judges; MiniLM retrieves). For the questions the router
sends to RAG, the share whose answer cites at least one relevant document (by the qrels: codes 1-4) —
target >= 80 % — and the routing mix (category, route, who classified and judged, retries).

The platform runs in this process (rag + agents contexts, the built-in catalogue). The questions are the
first --questions of cran.qry in file order (cranqrel numbers queries by position).

    .venv/bin/python bench/agents_quality.py [--questions 25] [--docs 1400] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rag import CRANFIELD  # noqa: E402
from hearth.agents.ports import SERVICE as AGENTS  # noqa: E402
from hearth.agents.runtime import RunDeps  # noqa: E402
from hearth.agents.schemas import RouterRequest  # noqa: E402
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


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=25)
    parser.add_argument("--docs", type=int, default=1400)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--cranfield", type=Path, default=CRANFIELD)
    args = parser.parse_args()
    cranfield = args.cranfield if args.cranfield.exists() else Path("/work/shared/data/cranfield")
    if not (cranfield / "cran.all.1400").exists():
        sys.exit(f"Cranfield is not on this machine (looked in {cranfield})")
    corpus = evaluation.load_corpus(cranfield / "cran.all.1400", "smart")[: args.docs]
    queries = evaluation.load_queries(cranfield / "cran.qry", "smart")
    qrels = evaluation.load_qrels(cranfield / "cranqrel", "smart")
    asked = [(qid, queries[qid]) for qid in list(queries)[: args.questions]]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", retention_sweep_seconds=0, agents_mcp_http=False)
        platform = await build_platform(settings, [RAG_CONTEXT, AGENTS_CONTEXT])
        try:
            rag = platform.ports.require(RAG)
            agents: AgentsService = platform.ports.require(AGENTS)
            user = (await AuthService(platform.db).create_user(username="bench")).id
            await rag.create_collection(user_id=user, name="cran")
            started = time.perf_counter()
            for i in range(0, len(corpus), 200):
                await rag.ingest_texts(
                    user_id=user,
                    collection="cran",
                    documents=[
                        TextDocument(text=d.text or d.title or d.id, title=d.title, source=d.id)
                        for d in corpus[i : i + 200]
                    ],
                )
            await rag.wait_idle(timeout=3600)
            print(
                f"ingested {len(corpus)} Cranfield documents in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            deps = RunDeps(user_id=user, caller=Caller(user_id=user))
            mix: Counter[str] = Counter()
            rag_routed = cited_relevant = 0
            started = time.perf_counter()
            for n, (qid, question) in enumerate(asked, 1):
                active = await agents.start_router(
                    deps=deps,
                    request=RouterRequest(query=question, collection="cran", max_tokens=args.max_tokens),
                )
                last = await agents.runs.wait(active)
                if last["type"] != "done":
                    mix["failed"] += 1
                    print(f"  q{qid}: {last['error']['message']}")
                    continue
                result = last["run"]["result"]
                mix[f"category {result['category']} (by {result['classified_by']})"] += 1
                mix[f"route {result['route']}"] += 1
                mix[f"judged by {result['judged_by']}"] += 1
                mix[f"answer {result['answer_mode']}"] += 1
                if result["retried"]:
                    mix["retried"] += 1
                how = (
                    f"{result['category']} by {result['classified_by']} → {result['route']}; score "
                    f"{result['score']} by {result['judged_by']}{'; retried' if result['retried'] else ''}"
                )
                if result["route"] != "rag":
                    print(f"  q{qid}: {how} ({n}/{len(asked)})", flush=True)
                    continue
                rag_routed += 1
                cited = {str(c["file"]) for c in result["citations"]}
                hit = bool(cited & set(qrels.get(qid, {})))
                cited_relevant += hit
                print(
                    f"  q{qid}: {how}; cites {sorted(cited)} {'relevant' if hit else 'none relevant'} "
                    f"({n}/{len(asked)})",
                    flush=True,
                )
            elapsed = time.perf_counter() - started
            print(f"\n{len(asked)} questions in {elapsed:.0f} s ({elapsed / len(asked):.1f} s each)")
            print("routing mix:")
            for key, count in sorted(mix.items()):
                print(f"  {key:<40} {count:>4}")
            if rag_routed:
                share = cited_relevant / rag_routed
                print(
                    f"\nRAG-routed answers citing >= 1 relevant document: {cited_relevant}/{rag_routed} = "
                    f"{share:.0%} (target >= 80 %)"
                )
        finally:
            await close_platform(platform)


if __name__ == "__main__":
    asyncio.run(main())
