"""Sparse-side variants of the default request, scored offline with cross-validation (issue 13, quality).

The default request (`rerank` on, `top_n` 10) is sent in process to a RagService per collection (SQLite,
LanceDB, the shipped MiniLM), with the keyword index's scoring patched for each variant; nDCG@10 is over
the returned chunks folded into documents, as `bench/rag_quality.py` scores them. Collections: Cranfield,
CISI (SMART files, `--cisi DIR`) and the 289-document part of Cranfield that tests/test_rag_rerank.py checks.

Variants (the rest of the path unchanged: fusion, feedback, the built-in reranker):
- `unstemmed λ`: a second BM25 index over the same chunks without stemming; its scores for the query's
  unstemmed words, scaled to λ × the stemmed scores' best, are added to the stemmed BM25 scores (first
  round and feedback's re-scoring);
- `idf^p, n+ terms`: in queries of at least n known terms, each query term's weight is multiplied by
  (its idf / the query's highest idf)^p, so a long query leans on its rarer words.

For each family it prints every setting's nDCG@10 per collection, then 2-fold cross-validation over each
collection's queries (50 random splits: the setting, the unchanged default included, chosen on one half and
scored on the other) and leave-one-collection-out (chosen on two collections, scored on the third).

    .venv/bin/python bench/sparse_variants.py --cisi /work/data/cisi [--data DIR (kept, loaded once)]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rerank_dump import CRANFIELD, load_collection, open_rag  # noqa: E402
from hearth.rag import evaluation, keyword  # noqa: E402
from hearth.rag.keyword import Index  # noqa: E402
from hearth.rag.repository import visible_collection_id  # noqa: E402
from hearth.rag.schemas import TextDocument  # noqa: E402
from hearth.rag.service import RagService  # noqa: E402

Variant = tuple[str, str, float, float, int]  # label, family, λ, p, n


class Unstemmed:
    """A BM25 index over the same rows' words, unstemmed (the same stopwords)."""

    def __init__(self, index: Index) -> None:
        import bm25s

        texts = [
            f"{t}\n{x}"
            for t, x in zip(
                index.rows.column("title").to_pylist(), index.rows.column("text").to_pylist(), strict=True
            )
        ]
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=None, return_ids=False, show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index([t or ["\x00"] for t in tokens], show_progress=False)
        self.rows = len(texts)
        self.stop = frozenset(bm25s.stopwords.STOPWORDS_EN_PLUS)

    def scores(self, query: str) -> np.ndarray:
        vocab = self.retriever.vocab_dict
        words = [w for w in keyword._WORDS.findall(query.lower()) if w not in self.stop and w in vocab]
        data, indices, indptr = (self.retriever.scores[k] for k in ("data", "indices", "indptr"))
        out = np.zeros(self.rows, dtype=np.float32)
        for term, count in Counter(vocab[w] for w in words).items():
            out[indices[indptr[term] : indptr[term + 1]]] += count * data[indptr[term] : indptr[term + 1]]
        return out


class Patch:
    """The keyword index's query weighting and scoring, patched for the current variant."""

    def __init__(self) -> None:
        self.variant: Variant = ("default", "default", 0.0, 0.0, 0)
        self.second: Unstemmed | None = None
        self.query = ""
        self.extra: np.ndarray | None = None
        self.scale = 0.0
        self.plain = Index.query_weights, Index.top, Index.scores_at

    def install(self) -> None:
        patch = self
        weights_of, top, scores_at = self.plain

        def query_weights(index: Index, query: str) -> dict[int, float]:
            patch.query, patch.extra = query, None
            weights = weights_of(index, query)
            _label, family, _lam, power, least = patch.variant
            if family == "idf" and weights and len(weights) >= least:
                best = max(float(index.idf[t]) for t in weights)
                weights = {t: c * (float(index.idf[t]) / best) ** power for t, c in weights.items()}
            return weights

        def second(index: Index) -> np.ndarray | None:
            if patch.variant[1] != "unstemmed" or patch.second is None:
                return None
            if patch.extra is None:
                patch.extra = patch.second.scores(patch.query)
            return patch.extra

        def patched_top(index: Index, weights: dict[int, float], k: int, allowed: Any = None) -> Any:
            extra = second(index)
            if extra is None:
                return top(index, weights, k, allowed)
            stemmed = index.scores(weights)
            patch.scale = patch.variant[2] * (float(stemmed.max()) or 1.0) / (float(extra.max()) or 1.0)
            scores = (stemmed + patch.scale * extra).astype(np.float32)
            if allowed is not None:
                scores = np.where(index.mask(allowed), scores, 0.0).astype(np.float32)
            rows = keyword.top_rows(scores, k)
            rows = rows[scores[rows] > 0]
            return rows, scores[rows]

        def patched_scores_at(index: Index, weights: dict[int, float], rows: np.ndarray) -> np.ndarray:
            out = scores_at(index, weights, rows)
            extra = second(index)
            return out if extra is None else (out + patch.scale * extra[rows]).astype(np.float32)

        Index.query_weights = query_weights  # type: ignore[method-assign]
        Index.top = patched_top  # type: ignore[method-assign]
        Index.scores_at = patched_scores_at  # type: ignore[method-assign]


async def collection(
    name: str, files: tuple[Path, Path, Path], part: bool, data: Path
) -> tuple[RagService, Callable[[], Any], str, dict[str, str], dict[str, dict[str, float]]]:
    corpus, queries, qrels = load_collection(*files, "smart", part=part)
    work = data / name
    fresh = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    rag, auth, close = await open_rag(work)
    if fresh:
        user = (await auth.create_user(username="bench")).id
        await rag.create_collection(user_id=user, name="c")
        bodies = [TextDocument(text=d.text or d.title, title=d.title or None, source=d.id) for d in corpus]
        for i in range(0, len(bodies), 500):
            await rag.ingest_texts(user_id=user, collection="c", documents=bodies[i : i + 500])
        while await rag.run_batch():
            pass
    else:
        found = await auth.user_id_of("bench")
        assert found is not None
        user = found

    return rag, close, user, queries, {q: qrels[q] for q in queries}


def cross_validate(table: dict[str, dict[str, np.ndarray]], labels: list[str]) -> None:
    """2-fold CV over each collection's queries (50 splits), then leave-one-collection-out."""
    for name, per_label in table.items():
        matrix = np.array([per_label[label] for label in labels])
        rng = np.random.default_rng(0)
        means = []
        for _ in range(50):
            halves = np.array_split(rng.permutation(matrix.shape[1]), 2)
            scored = np.zeros(matrix.shape[1])
            for test, train in (halves, halves[::-1]):
                scored[test] = matrix[int(np.argmax(matrix[:, train].mean(axis=1))), test]
            means.append(scored.mean())
        print(
            f"  2-fold CV, {name}: {np.mean(means):.4f} (splits {np.min(means):.4f}-{np.max(means):.4f}); "
            f"default {matrix[0].mean():.4f}"
        )
    for held in table:
        others = [n for n in table if n != held]
        best = max(labels, key=lambda label: np.mean([table[n][label].mean() for n in others]))
        print(
            f"  chosen on {' + '.join(others)}: {best} -> {held} {table[held][best].mean():.4f} "
            f"(default {table[held][labels[0]].mean():.4f})"
        )


async def run(args: argparse.Namespace, data: Path) -> None:
    cranfield = (CRANFIELD / "cran.all.1400", CRANFIELD / "cran.qry", CRANFIELD / "cranqrel")
    cisi = (args.cisi / "CISI.ALL", args.cisi / "CISI.QRY", args.cisi / "CISI.REL")
    sets = {"Cranfield": (cranfield, False), "CISI": (cisi, False), "part": (cranfield, True)}
    patch = Patch()
    patch.install()
    loaded = {}
    for name, (files, part) in sets.items():
        rag, close, user, queries, qrels = await collection(name, files, part, data)
        collection_id = await visible_collection_id(rag.db, user_id=user, ref="c")
        index = rag.searcher.keywords.load(collection_id)
        assert index is not None
        loaded[name] = (rag, close, user, queries, qrels, Unstemmed(index))
    families: dict[str, list[Variant]] = {
        "unstemmed BM25 added at λ": [
            (f"unstemmed λ {lam}", "unstemmed", lam, 0.0, 0)
            for lam in (0.25, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
        ],
        "query terms weighted by idf^p in queries of n+ terms": [
            (f"idf^{p}, {n}+ terms", "idf", 0.0, p, n) for n in (0, 8, 12, 16, 24) for p in (0.75, 1.0, 1.5)
        ],
    }
    default: Variant = ("default", "default", 0.0, 0.0, 0)
    for family, variants in families.items():
        print(f"\n{family}: nDCG@10 of the default request | " + " | ".join(loaded))
        table: dict[str, dict[str, np.ndarray]] = {name: {} for name in loaded}
        for variant in [default, *variants]:
            patch.variant = variant
            cells = []
            for name, (rag, _close, user, queries, qrels, second) in loaded.items():
                patch.second = second
                per_query = []
                for qid, text in queries.items():
                    result = await rag.search(user_id=user, collection="c", query=text, top_n=10)
                    ranked = evaluation.documents_in_order(s.metadata["source"] for s in result.sources)
                    per_query.append(evaluation.ndcg_at(ranked, qrels[qid]))
                table[name][variant[0]] = np.array(per_query)
                cells.append(f"{np.mean(per_query):.4f}")
            print(f"| {variant[0]} | " + " | ".join(cells) + " |", flush=True)
        cross_validate(table, [default[0]] + [v[0] for v in variants])
    for _rag, close, *_rest in loaded.values():
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cisi", type=Path, required=True, help="folder with CISI.ALL, CISI.QRY, CISI.REL")
    parser.add_argument("--data", type=Path, help="keep the loaded collections here (loaded once)")
    args = parser.parse_args()
    if args.data:
        asyncio.run(run(args, args.data))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
