"""Offline grid over the built-in reranker's knobs, on dumps from `bench/rerank_dump.py`.

nDCG@10 is computed as the default request sees it: the reranked first `top_n` (10) chunks folded into
documents in rank order (`evaluation.documents_in_order`), against the qrels.

    .venv/bin/python bench/rerank_tune.py cran.pkl cisi.pkl part.pkl
    .venv/bin/python bench/rerank_tune.py --variants cran.pkl part.pkl   (dumps made with --variants)
"""

from __future__ import annotations

import itertools
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hearth.rag import evaluation


@dataclass(frozen=True)
class Knobs:
    depth: int = 50
    smoothing: float = 0.2
    temperature: float = 0.05
    same_document: float = 0.5
    prf_m: int = 0  # dense pseudo-relevance feedback: top candidates averaged (0: off)
    prf_beta: float = 1.0  # weight of their mean added to the query vector
    prf_weight: float = 0.0  # share of the score taken from cosine(q', candidate), max-normalised
    doc_bonus: float = 0.0  # a document's best chunk gains this share of its other chunks' scores


class Query:
    def __init__(self, q: dict, names: dict[str, str], gains: dict[str, float]) -> None:
        self.scores = np.asarray(q["scores"], dtype=np.float64)
        self.vectors = np.asarray(q["vectors"], dtype=np.float32)
        self.query = np.asarray(q["query"], dtype=np.float32)
        self.docs = [names[d] for d in q["documents"]]
        self.gains = gains
        self.similar = (self.vectors @ self.vectors.T).astype(np.float64)
        np.fill_diagonal(self.similar, -np.inf)
        self.weights: dict[tuple[int, float], np.ndarray] = {}

    def softmax(self, depth: int, temperature: float) -> np.ndarray:
        key = (depth, temperature)
        if key not in self.weights:
            s = self.similar[:depth, :depth]
            w = np.exp((s - s.max(axis=1, keepdims=True)) / temperature)
            self.weights[key] = w / w.sum(axis=1, keepdims=True)
        return self.weights[key]

    def ndcg(self, k: Knobs, top_n: int = 10) -> float:
        d = min(k.depth, len(self.scores))
        scores = self.scores[:d]
        mixed = scores / scores.max()
        if k.prf_m and k.prf_weight:
            m = min(k.prf_m, d)
            w = mixed[:m]
            moved = self.query + k.prf_beta * (w @ self.vectors[:m]) / w.sum()
            moved /= np.linalg.norm(moved)
            cos = self.vectors[:d] @ moved
            mixed = (1 - k.prf_weight) * mixed + k.prf_weight * cos / cos.max()
        mixed = self.smoothed(mixed, k)
        if k.doc_bonus:
            total: dict[str, float] = {}
            for i, doc in enumerate(self.docs[:d]):
                total[doc] = total.get(doc, 0.0) + mixed[i]
            mixed = mixed + k.doc_bonus * (np.array([total[doc] for doc in self.docs[:d]]) - mixed)
        return self.ranked_ndcg(mixed, k, top_n)

    def smoothed(self, mixed: np.ndarray, k: Knobs) -> np.ndarray:
        """The shipped reranker's smoothing: each candidate's score moves toward its similar candidates'."""
        d = len(mixed)
        if k.smoothing and d > 1:
            return (1 - k.smoothing) * mixed + k.smoothing * (self.softmax(d, k.temperature) @ mixed)
        return mixed

    def ranked_ndcg(self, mixed: np.ndarray, k: Knobs, top_n: int = 10) -> float:
        """nDCG of the first `top_n` candidates ordered by `mixed`, each further chunk of a document already
        ranked scaled by `same_document` (the shipped reranker's last step), folded into documents."""
        out = mixed.copy()
        seen: dict[str, int] = {}
        for i in np.argsort(-mixed, kind="stable").tolist():
            above = seen.get(self.docs[i], 0)
            out[i] = mixed[i] * k.same_document**above
            seen[self.docs[i]] = above + 1
        order = np.argsort(-out, kind="stable")[:top_n].tolist()
        return evaluation.ndcg_at(evaluation.documents_in_order(self.docs[i] for i in order), self.gains)


def load(path: str) -> list[Query]:
    data = pickle.loads(Path(path).read_bytes())
    names = data["documents"]
    return [Query(q, names, data["qrels"][qid]) for qid, q in data["queries"].items()]


def score(sets: list[list[Query]], k: Knobs) -> list[float]:
    return [float(np.mean([q.ndcg(k) for q in s])) for s in sets]


def fusion_deep(s: list[Query]) -> float:
    return float(
        np.mean([evaluation.ndcg_at(evaluation.documents_in_order(q.docs[:100]), q.gains) for q in s])
    )


def main() -> None:
    sets = [load(p) for p in sys.argv[1:]]
    print("fusion, 100 chunks", [round(fusion_deep(s), 4) for s in sets])
    base = Knobs()
    ref = score(sets, base)
    print("current default", [round(x, 4) for x in ref])
    print("no smoothing", [round(x, 4) for x in score(sets, Knobs(smoothing=0))])
    results = []
    grid = itertools.product((3, 5, 10), (0.0, 0.5, 1.0, 2.0), (0.1, 0.2, 0.3, 0.5))
    for m, beta, w in grid:
        k = Knobs(prf_m=m, prf_beta=beta, prf_weight=w)
        results.append((k, score(sets, k)))
    for depth, sm, t, sd in itertools.product(
        (30, 50, 100), (0.0, 0.1, 0.2, 0.3), (0.02, 0.05, 0.1), (0.3, 0.5)
    ):
        k = Knobs(depth=depth, smoothing=sm, temperature=t, same_document=sd)
        results.append((k, score(sets, k)))
    for sd, bonus in itertools.product((0.0, 0.3, 0.5), (0.0, 0.1, 0.2, 0.3, 0.5)):
        k = Knobs(same_document=sd, doc_bonus=bonus)
        results.append((k, score(sets, k)))
    results.sort(key=lambda r: -r[1][0])
    for k, s in results[:40]:
        ok = all(x > r for x, r in zip(s, ref, strict=True))
        print(("OK  " if ok else "    ") + str([round(x, 4) for x in s]), k)


def variants(paths: list[str], knobs: list[Knobs]) -> None:
    """Fusion and feedback settings (dumps made with `--variants`): fusion alone and the reranker, each."""
    data = [pickle.loads(Path(p).read_bytes()) for p in paths]
    for variant in data[0]["variants"]:
        sets = [
            [Query(q, d["documents"], d["qrels"][qid]) for qid, q in d["variants"][variant].items()]
            for d in data
        ]
        rows = [[round(fusion_deep(s), 4) for s in sets]] + [
            [round(x, 4) for x in score(sets, k)] for k in knobs
        ]
        print("(sparse_weight, feedback, terms, Rocchio, expansion, candidates)", variant, *rows)


if __name__ == "__main__":
    if sys.argv[1] == "--variants":
        variants(sys.argv[2:], [Knobs(), Knobs(depth=30, smoothing=0.3, temperature=0.02)])
    else:
        main()
