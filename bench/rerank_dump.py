"""Dump what the built-in reranker sees, per query, for offline tuning (`bench/rerank_tune.py`).

A collection is loaded in-process into a fresh RagService (SQLite, LanceDB, the shipped MiniLM), every query
is sent as the default request (`rerank` on, `top_n` 10) with the reranker's depth raised to 100, and the
reranker's inputs are recorded instead of changing its output: the fused scores (after feedback), the stored
unit vectors and document ids of the candidates, and the query vector.

    .venv/bin/python bench/rerank_dump.py OUT.pkl [--corpus …] [--queries …] [--qrels …] [--part]
        [--variants fusion|feedback|all] [--texts]

`--part` uses the 289-document part of Cranfield that tests/test_rag_rerank.py checks.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from hearth.auth.service import AuthService
from hearth.config import ModelsConfig
from hearth.events.bus import EventBus
from hearth.gateway.service import Gateway
from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from hearth.rag import evaluation, retrieval, search
from hearth.rag.keyword import KeywordIndex
from hearth.rag.lance import LanceStore
from hearth.rag.models import Document
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagConfig, RagService

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"  # as bench/rag.py
if not CRANFIELD.exists():  # a worktree beside the main checkout
    CRANFIELD = Path("/work/shared/data/cranfield")
EMBED_ONLY = {
    "backends": {"local-embed": {"type": "onnx_embedding"}},
    "aliases": {"embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]}},
}


def load_collection(
    corpus_path: Path | str, queries_path: Path | str, qrels_path: Path | str, fmt: str, *, part: bool
) -> tuple[list, dict[str, str], dict[str, dict[str, float]]]:
    """The documents with text, the judged queries and the qrels; `part`: the 289-document part of Cranfield
    that tests/test_rag_rerank.py checks (its first 30 judged queries, their judged documents and the first
    150 of the corpus)."""
    every = evaluation.load_corpus(corpus_path, fmt)
    queries = evaluation.load_queries(queries_path, fmt)
    qrels = evaluation.load_qrels(qrels_path, fmt)
    corpus = every
    if part:
        queries = {q: queries[q] for q in list(queries)[:30] if qrels.get(q)}
        judged = {d for q in queries for d in qrels[q]}
        corpus = [d for i, d in enumerate(every) if d.id in judged or i < 150]
    corpus = [d for d in corpus if (d.text or d.title).strip()]
    return corpus, {q: t for q, t in queries.items() if qrels.get(q)}, qrels


async def open_rag(
    work: Path, **config: Any
) -> tuple[RagService, AuthService, Callable[[], Awaitable[None]]]:
    """A RagService in this process on SQLite and LanceDB in `work` with the shipped MiniLM, started without
    its ingestion worker (`config`: RagConfig fields); its users' directory; and what closes all of it."""
    url = f"sqlite+aiosqlite:///{work / 'hearth.db'}"
    upgrade(url)
    database = Database(url)
    gateway = Gateway(ModelsConfig.model_validate(EMBED_ONLY))
    await gateway.start()
    auth = AuthService(database)
    rag = RagService(
        db=database,
        bus=EventBus(database),
        gateway=gateway,
        store=LanceStore(work / "lance"),
        keywords=KeywordIndex(work / "bm25"),
        config=RagConfig(data_dir=work, **config),
        users=auth,
    )
    await rag.start(worker=False)

    async def close() -> None:
        await rag.stop()
        await gateway.close()
        await database.close()

    return rag, auth, close


async def dump(args: argparse.Namespace, work: Path) -> dict:
    corpus, queries, qrels = load_collection(
        args.corpus, args.queries, args.qrels, args.format, part=args.part
    )
    rag, auth, close = await open_rag(work, rerank_depth=100)
    config, database = rag.config, rag.db
    user = (await auth.create_user(username="tuner")).id
    await rag.create_collection(user_id=user, name="c")
    bodies = [TextDocument(text=d.text or d.title, title=d.title or None, source=d.id) for d in corpus]
    await rag.ingest_texts(user_id=user, collection="c", documents=bodies)
    while await rag.run_batch():
        pass
    seen: dict = {}
    plain_rerank, plain_rows = search.rerank.rerank, retrieval.search_rows

    def record_rerank(scores, vectors, documents):  # type: ignore[no-untyped-def]
        seen["scores"], seen["vectors"], seen["documents"] = (
            np.asarray(scores),
            np.asarray(vectors),
            documents,
        )
        return plain_rerank(scores, vectors, documents)

    def record_rows(index, dense, weights, vector, **kw):  # type: ignore[no-untyped-def]
        seen["query"] = np.asarray(vector, dtype=np.float32)
        found = plain_rows(index, dense, weights, vector, **kw)
        if args.texts and found is not None:  # the candidates' texts as embedded (title, then chunk)
            seen["texts"] = [f"{p['title']}\n{p['text']}" for p in index.payloads(found.rows)]
        return found

    search.rerank.rerank = record_rerank  # type: ignore[assignment]
    search.retrieval.search_rows = record_rows  # type: ignore[assignment]
    out: dict = {"qrels": {q: qrels[q] for q in queries}, "variants": {}}
    # (sparse_weight, feedback, feedback_terms, Rocchio share kept, expansion weight, candidates)
    default = (config.sparse_weight, config.feedback, config.feedback_terms)
    default += (retrieval.ROCCHIO, retrieval.EXPANSION_WEIGHT, config.candidates)
    variants = [default]
    if args.variants in ("all", "fusion"):  # fusion and feedback settings, on the same index
        variants += [(w, f, 10, 0.5, 0.5, 100) for w in (0.2, 0.3, 0.4, 0.5) for f in (0, 3, 5, 10)]
        variants += [(0.3, 3, 5, 0.5, 0.5, 100), (0.3, 3, 20, 0.5, 0.5, 100)]
    if args.variants in ("all", "feedback"):
        variants += [(0.3, 3, 10, r, e, 100) for r in (0.3, 0.5, 0.7) for e in (0.3, 0.5, 0.7)]
        variants += [(0.3, 3, 10, 0.5, 0.5, c) for c in (50, 200)]
    try:
        for variant in dict.fromkeys(variants):
            config.sparse_weight, config.feedback, config.feedback_terms = variant[:3]
            retrieval.ROCCHIO, retrieval.EXPANSION_WEIGHT, config.candidates = variant[3:]
            runs = out["variants"][variant] = {}
            for qid, text in queries.items():
                seen.clear()
                result = await rag.search(user_id=user, collection="c", query=text, top_n=10)
                runs[qid] = {**seen, "text": text, "returned": [s.metadata["source"] for s in result.sources]}
        out["queries"] = out["variants"][variants[0]]
    finally:
        search.rerank.rerank, search.retrieval.search_rows = plain_rerank, plain_rows
    async with database.transaction() as session:  # document uuid -> corpus id
        out["documents"] = {r[0]: r[1] for r in await session.execute(select(Document.id, Document.source))}
    await close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", type=Path, default=CRANFIELD / "cran.all.1400")
    parser.add_argument("--queries", type=Path, default=CRANFIELD / "cran.qry")
    parser.add_argument("--qrels", type=Path, default=CRANFIELD / "cranqrel")
    parser.add_argument("--format", default="smart")
    parser.add_argument("--part", action="store_true")
    parser.add_argument("--texts", action="store_true", help="record the candidates' texts too")
    parser.add_argument(
        "--variants", choices=("none", "fusion", "feedback", "all"), default="none", help="other settings too"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(dump(args, Path(tmp)))
    args.out.write_bytes(pickle.dumps(out))


if __name__ == "__main__":
    main()
