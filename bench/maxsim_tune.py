"""Offline: does late interaction (MaxSim over MiniLM's token vectors) add signal to the built-in reranker?

Reads dumps made by `bench/rerank_dump.py --texts` (the fused candidates, their texts as embedded, the query
text). Every distinct candidate text is encoded once by the shipped MiniLM (int8 ONNX); its token vectors
(`last_hidden_state`, unit length) are kept, optionally cut to fewer dimensions (PCA fitted on the corpus's
tokens) and quantised to int8, as an index could store them. A candidate's MaxSim score is the mean over the
query's tokens of the best cosine with any of its tokens (ColBERT's, averaged). It is mixed into the
reranker's regularised score at weight w (max-normalised), then one chunk per document first, as shipped.

Weights are chosen by 2-fold cross-validation over queries (odd/even halves): the weight that scores best on
one half is scored on the other, and the two halves' figures are averaged, so nothing is tuned and scored on
the same queries.

    .venv/bin/python bench/maxsim_tune.py cran.pkl cisi.pkl part.pkl
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rerank_tune import Knobs, Query  # noqa: E402
from hearth.config import BackendConfig  # noqa: E402
from hearth.gateway.backends.onnx_embedding import OnnxEmbeddingBackend, length_batches, pad_batch  # noqa: E402

SPECIAL = {101, 102, 0}  # [CLS], [SEP], [PAD]


class Encoder:
    def __init__(self) -> None:
        self.backend = OnnxEmbeddingBackend("e", BackendConfig(type="onnx_embedding"))
        self.backend.load()

    def tokens(self, texts: list[str], *, drop_special: bool = True) -> list[np.ndarray]:
        """Unit token vectors per text (float32 [tokens, 384])."""
        b = self.backend
        encodings = b._tokenizer.encode_batch(texts)
        out: list[np.ndarray] = [np.zeros(0)] * len(texts)
        for batch in length_batches(encodings, 32):
            feed = pad_batch([encodings[i] for i in batch], b._input_names)
            hidden = b._session.run(None, feed)[0]
            for row, i in enumerate(batch):
                ids = encodings[i].ids
                keep = [j for j, t in enumerate(ids) if not (drop_special and t in SPECIAL)]
                v = hidden[row, keep].astype(np.float32)
                v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
                out[i] = v
        return out


def quantise(vectors: np.ndarray) -> np.ndarray:
    """int8 per row-scale, as an index would store them, back to float (unit rows)."""
    scale = np.abs(vectors).max(axis=1, keepdims=True) / 127.0
    q = np.round(vectors / np.maximum(scale, 1e-12)).astype(np.int8)
    out = q.astype(np.float32) * scale
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    return float((query @ doc.T).max(axis=1).mean())


def main() -> None:
    encoder = Encoder()
    sets = []
    for path in sys.argv[1:]:
        data = pickle.loads(Path(path).read_bytes())
        texts = sorted({t for q in data["queries"].values() for t in q["texts"][:50]})
        print(path, len(texts), "distinct candidate texts", flush=True)
        tokens = dict(zip(texts, encoder.tokens(texts), strict=True))
        queries = [Query(q, data["documents"], data["qrels"][qid]) for qid, q in data["queries"].items()]
        qtok = encoder.tokens([q["text"] for q in data["queries"].values()])
        raw = list(data["queries"].values())
        sets.append((path, queries, qtok, raw, tokens))

    # variants of what is stored: full float, int8, PCA to 128 / 64 dims then int8
    def variants(tokens: dict[str, np.ndarray]) -> dict[str, tuple]:
        allv = np.concatenate(list(tokens.values()))
        mean = allv.mean(axis=0)
        _u, _s, vt = np.linalg.svd(allv[:: max(1, len(allv) // 50000)] - mean, full_matrices=False)
        out = {"f32": None, "int8": "q"}
        for d in (128, 64, 32):
            out[f"pca{d}+int8"] = vt[:d]
        return out

    base = Knobs()
    for path, queries, qtok, raw, tokens in sets:
        print(f"== {path}: shipped reranker", round(float(np.mean([q.ndcg(base) for q in queries])), 4))
        for name, how in variants(tokens).items():
            scores = []
            for q, qt, r in zip(queries, qtok, raw, strict=True):
                d = min(base.depth, len(q.scores))
                row = []
                for t in r["texts"][:d]:
                    doc, query = tokens[t], qt
                    if how == "q":
                        doc = quantise(doc)
                    elif how is not None:
                        doc = doc @ how.T
                        doc = quantise(doc / np.maximum(np.linalg.norm(doc, axis=1, keepdims=True), 1e-12))
                        query = qt @ how.T
                        query /= np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
                    row.append(maxsim(query, doc))
                scores.append(np.asarray(row))
            grid = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
            table = {w: [ndcg_mixed(q, s, w) for q, s in zip(queries, scores, strict=True)] for w in grid}
            means = {w: round(float(np.mean(v)), 4) for w, v in table.items()}
            halves = [list(range(0, len(queries), 2)), list(range(1, len(queries), 2))]
            cv = []
            for train, test in (halves, halves[::-1]):
                best = max(grid, key=lambda w: np.mean([table[w][i] for i in train]))
                cv.append((best, float(np.mean([table[best][i] for i in test]))))
            cv_score = round(float(np.mean([c[1] for c in cv])), 4)
            print(f"  {name}: by weight {means}; 2-fold CV {cv_score} (weights {[c[0] for c in cv]})")


def ndcg_mixed(q: Query, maxsims: np.ndarray, weight: float, k: Knobs = Knobs()) -> float:
    scores = q.scores[: len(maxsims)]
    mixed = q.smoothed(scores / scores.max(), k)
    if weight:
        mixed = (1 - weight) * mixed + weight * maxsims / maxsims.max()
    return q.ranked_ndcg(mixed, k)


if __name__ == "__main__":
    main()
