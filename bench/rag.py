"""RAG benchmarks, printed side by side:

1. Ingest throughput: documents through Hearth's whole ingest path (JSON text → job → extraction → chunking →
   batched embeddings through the gateway → LanceDB + BM25 → active), against the raw ONNX embedding model
   embedding the very same chunk texts in one call. Target: Hearth >= 80 % of raw. Documents are queued
   the way `hearth rag load` and `hearth ingest` queue them: bulk requests of 200 documents
   (`RagService.ingest_texts`, one transaction each), not one request per document. The raw model is timed
   before and after Hearth's ingest, and the ratio uses the mean of the two (the load drifts on a shared
   machine).
2. Search-stage latency at 100k chunks (hybrid, no rerank): LanceDB (IVF_HNSW_SQ) + BM25 + fusion + the
   active-version check + payload fetch, for the Cranfield queries. Target: p95 <= 10 ms.
   The 100k chunks are synthetic (no machine here embeds 100k chunks in a benchmark's time): texts sampled
   from Cranfield's vocabulary, vectors mixes of two real Cranfield chunk embeddings plus noise.

    .venv/bin/python bench/rag.py [--docs 400] [--chunks 100000] [--cranfield ../shared/data/cranfield]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from hearth.auth.service import AuthService
from hearth.config import Settings
from hearth.platform.core import build_platform, close_platform
from hearth.platform.db import new_id, utcnow
from hearth.rag import evaluation
from hearth.rag.extract import Segment
from hearth.rag.models import Document
from hearth.rag.ports import SERVICE as RAG
from hearth.rag.schemas import TextDocument
from hearth.rag.service import RagService
from hearth.rag.stores import ChunkRecord
from hearth.rag.wiring import CONTEXT
from hearth.rag.worker import clip

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"
STORE_ALONE = "vector store alone"
CLI_BATCH = 200  # documents per bulk request, as the CLI sends them (hearth.cli.rag._BATCH_ITEMS)
EMBED_ONLY = {
    "include_defaults": False,
    "backends": {
        "local-embed": {"type": "onnx_embedding"},
        "local-rerank": {"type": "embedding_rerank", "embedder": "local-embed"},
    },
    "aliases": {
        "embedder": {"kind": "embedding", "deployments": [{"backend": "local-embed"}]},
        "reranker": {"kind": "rerank", "deployments": [{"backend": "local-rerank"}]},
    },
}


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def ingest(rag: RagService, user: str, docs: list[evaluation.CorpusDoc]) -> tuple[float, int]:
    await rag.create_collection(user_id=user, name="bench-ingest")
    started = time.perf_counter()
    # In requests of CLI_BATCH documents, as `hearth rag load` sends them (to the batch route, which calls
    # `ingest_texts`): the bench calls the service directly, so HTTP parsing is not in the figure.
    for start in range(0, len(docs), CLI_BATCH):
        await rag.ingest_texts(
            user_id=user,
            collection="bench-ingest",
            documents=[
                TextDocument(text=doc.text or doc.title, title=doc.title, source=doc.id)
                for doc in docs[start : start + CLI_BATCH]
            ],
        )
    await rag.wait_idle(timeout=3600)
    elapsed = time.perf_counter() - started
    listed = await rag.list_documents(user_id=user, collection="bench-ingest", limit=100_000)
    assert all(d.status == "indexed" for d in listed), [d.error for d in listed if d.status != "indexed"][:3]
    return elapsed, sum(d.chunk_count for d in listed)


def chunk_texts(rag: RagService, docs: list[evaluation.CorpusDoc]) -> list[str]:
    """The exact texts Hearth embeds for these documents (title prefix + chunk)."""
    from hearth.rag.chunking import chunk_segments

    texts = []
    for doc in docs:
        prefix = clip(rag.counter, doc.title, rag.config.title_tokens)
        for c in chunk_segments(
            [Segment(" ".join((doc.text or doc.title).split()))],
            counter=rag.counter,
            size=rag.config.chunk_tokens,
            overlap=rag.config.chunk_overlap,
        ):
            texts.append(f"{prefix}\n{c.text}" if prefix else c.text)
    return texts


async def build_large(rag: RagService, user: str, base_vectors: np.ndarray, vocab: list[str], n: int) -> str:
    """A collection of `n` synthetic chunks in 10-chunk documents, written straight to the indexes."""
    collection = await rag.create_collection(user_id=user, name="bench-100k")
    rng = np.random.default_rng(0)
    pyrng = random.Random(0)
    per_doc = 10
    doc_ids = [new_id() for _ in range(n // per_doc)]
    versions = {d: new_id() for d in doc_ids}
    async with rag.db.transaction() as session:
        now = utcnow()
        for d in doc_ids:
            session.add(
                Document(
                    id=d,
                    collection_id=collection.id,
                    source=f"{d}.txt",
                    title=d,
                    content_type="txt",
                    content_hash=d,
                    meta={},
                    status="indexed",
                    job_id=versions[d],
                    active_version=versions[d],
                    chunk_count=per_doc,
                    updated_at=now,
                )
            )
    batch = 10_000
    for start in range(0, n, batch):
        # Each vector mixes two real chunk vectors plus a little noise: noisy copies of a few hundred
        # vectors would make the true neighbours near-ties, an unrealistically hard case for any ANN index.
        first = base_vectors[rng.integers(0, len(base_vectors), size=batch)]
        second = base_vectors[rng.integers(0, len(base_vectors), size=batch)]
        share = rng.uniform(0.5, 1.0, size=(batch, 1)).astype(np.float32)
        vectors = share * first + (1 - share) * second
        vectors += rng.normal(0, 0.02, size=vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        records = []
        for i in range(batch):
            d = doc_ids[(start + i) // per_doc]
            records.append(
                ChunkRecord(
                    chunk_id=new_id(),
                    document_id=d,
                    version=versions[d],
                    position=(start + i) % per_doc,
                    page=-1,
                    title=d,
                    text=" ".join(pyrng.choices(vocab, k=120)),
                    metadata="{}",
                    vector=vectors[i],
                )
            )
        rag.store.add(collection.id, records)
    started = time.perf_counter()
    rag.store.optimize(collection.id)
    print(f"  ANN index built in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    await rag.indexes.rebuild_keywords(collection.id)
    print(f"  BM25 index built in {time.perf_counter() - started:.1f} s")
    return collection.id


async def ann_recall(rag: RagService, collection_id: str, qvecs: np.ndarray) -> tuple[float, float]:
    """Recall@10 and @100 of LanceDB's ANN search against exact cosine search over the same vectors (the
    copies kept beside the BM25 index)."""
    index = rag.keywords.load(collection_id)
    assert index is not None and index.vectors is not None
    vectors = np.asarray(index.vectors)
    at10, at100 = [], []
    for q in qvecs:
        scores = vectors @ q
        exact = np.argpartition(-scores, 100)[:100]
        exact = exact[np.argsort(-scores[exact])]
        truth = [index.chunk_ids[r] for r in exact.tolist()]
        found = [h.chunk_id for h in rag.store.search(collection_id, q, 100)]
        at10.append(len(set(truth[:10]) & set(found[:10])) / 10)
        at100.append(len(set(truth) & set(found)) / 100)
    return float(np.mean(at10)), float(np.mean(at100))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cranfield", type=Path, default=CRANFIELD)
    parser.add_argument("--docs", type=int, default=400, help="documents for the ingest comparison")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the search-latency collection")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries")
    args = parser.parse_args()
    if not args.cranfield.exists():
        args.cranfield = Path("/work/shared/data/cranfield")
    corpus = evaluation.load_corpus(args.cranfield / "cran.all.1400", "smart")
    queries = list(evaluation.load_queries(args.cranfield / "cran.qry", "smart").values())
    docs = corpus[: args.docs]

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "hearth.yaml"
        config.write_text(yaml.safe_dump(EMBED_ONLY))
        settings = Settings(data_dir=Path(tmp) / "data", config_file=config, retention_sweep_seconds=0)
        platform = await build_platform(settings, [CONTEXT])
        try:
            rag: RagService = platform.ports.require(RAG)
            user = (await AuthService(platform.db).create_user(username="bench")).id
            backend = platform.gateway.backends["local-embed"]

            texts = chunk_texts(rag, docs)
            backend.embed_sync(texts[:64])  # warm both paths alike

            async def raw_run() -> float:
                started = time.perf_counter()
                await asyncio.to_thread(backend.embed_sync, texts)
                return time.perf_counter() - started

            # The raw model is timed before and after Hearth and the mean is used: on a shared machine the
            # load drifts within a run, and one raw figure taken only before would bias the ratio.
            raw_before = await raw_run()
            hearth_s, chunks = await ingest(rag, user, docs)
            assert chunks == len(texts), (chunks, len(texts))
            raw_after = await raw_run()
            raw = (raw_before + raw_after) / 2

            print(f"ingest: {len(docs)} Cranfield documents, {chunks} chunks")
            print(
                f"  raw ONNX embedder (same texts, one call): {chunks / raw:8.1f} chunks/s"
                f"  (before {chunks / raw_before:.1f}, after {chunks / raw_after:.1f})"
            )
            print(f"  Hearth ingest path (jobs → indexed):      {chunks / hearth_s:8.1f} chunks/s")
            print(f"  ratio: {raw / hearth_s:.2f} (target >= 0.80)")

            if args.chunks <= 0:
                return
            table = rag.store._table((await rag.get_collection(user_id=user, collection="bench-ingest")).id)
            base = table.search().select(["vector"]).limit(table.count_rows()).to_arrow()
            base_vectors = np.stack(base.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
            vocab = " ".join(d.text for d in corpus).split()
            print(f"search: building a {args.chunks}-chunk collection")
            collection_id = await build_large(rag, user, base_vectors, vocab, args.chunks)
            qvecs = backend.embed_sync(queries)
            recall10, recall100 = await ann_recall(rag, collection_id, qvecs)
            print(
                f"  ANN (IVF_HNSW_SQ) against exact cosine search, {len(queries)} queries: "
                f"recall@10 {recall10:.3f}, recall@100 {recall100:.3f}"
            )
            # The modes take turns query by query, so a change in the machine's load hits them all alike.
            variants = {
                "hybrid": ("hybrid", rag.config.feedback),
                "hybrid, no feedback": ("hybrid", 0),
                "dense": ("dense", 0),
                "sparse": ("sparse", 0),
            }
            results: dict[str, list[float]] = {name: [] for name in variants}
            # The floor: the vector store's own query for the dense candidates, as the stage issues it.
            results[STORE_ALONE] = []
            index = rag.keywords.load(collection_id)
            assert index is not None
            load_before = os.getloadavg()[0]
            for _ in range(args.rounds):
                for text, vec in zip(queries, qvecs, strict=True):
                    started = time.perf_counter()
                    await asyncio.to_thread(rag.store.search_keys, collection_id, vec, rag.config.candidates)
                    results[STORE_ALONE].append((time.perf_counter() - started) * 1000)
                    for name, (mode, feedback) in variants.items():
                        rag.config.feedback = feedback
                        started = time.perf_counter()
                        await rag.search_stage(
                            collection_id, text, vec if mode != "sparse" else None, mode=mode, top_k=10
                        )
                        results[name].append((time.perf_counter() - started) * 1000)
            rag.config.feedback = variants["hybrid"][1]
            print(
                f"search stage at {args.chunks} chunks, top_k 10, {len(queries)} queries x {args.rounds} "
                f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after):"
            )
            for name, samples in results.items():
                print(
                    f"  {name:20s}: p50 {_pct(samples, 50):6.2f} ms  p95 {_pct(samples, 95):6.2f} ms"
                    + ("  (target p95 <= 10 ms)" if name == "hybrid" else "")
                )
            summary = {
                "ingest_ratio": round(raw / hearth_s, 3),
                "hybrid_p95_ms": round(_pct(results["hybrid"], 95), 2),
                "ann_recall10": round(recall10, 3),
            }
            print(json.dumps(summary))
        finally:
            await close_platform(platform)


if __name__ == "__main__":
    asyncio.run(main())
