"""The built-in reranker: what `rerank: true` does when no reranking model (a cross-encoder, or a remote
`/v1/rerank` server) is configured. It calls no model and embeds nothing: it re-scores the fused candidates
from the vectors already stored beside the keyword index.

1. **Score regularisation** (the cluster hypothesis: close documents have close relevance). Each candidate's
   fused score, divided by the best one, takes a fifth of its value from a softmax-weighted mean of the
   other candidates' scores, weighted by how similar their stored vectors are to its own (temperature
   0.05). A candidate alone among the top ones loses a little; one in a group of good candidates gains.
   The weight is small on purpose: at half, Cranfield and CISI gained 0.011 and 0.013 nDCG@10 but a
   289-document part of Cranfield lost 0.010; at a fifth all three gained 0.002-0.006 (docs/rag.md).
2. **One chunk per document first.** A document's second best chunk counts half its score, its third a
   quarter…: the sources returned cover more documents, while a chunk far better than the others still
   comes through.

Why not the embedding reranker: it embedded every candidate again with the same MiniLM that made the dense
scores (352 ms for 10 on this machine) and then ordered by cosine alone, a signal fusion already had; it
lowered Cranfield's nDCG@10 below fusion alone (docs/rag.md, "Reranking").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hearth.rag.linalg import gram

DEPTH = 50  # fused candidates the built-in reranker re-scores (and a caller's smaller top_k is raised to)
SMOOTHING = 0.2  # share of a candidate's score taken from its neighbours
TEMPERATURE = 0.05  # of the softmax over cosine similarities between candidates
SAME_DOCUMENT = 0.5  # factor per chunk of the same document already ranked above


def rerank(scores: np.ndarray, vectors: np.ndarray | None, documents: Sequence[str]) -> np.ndarray:
    """New scores for candidates (fused `scores`, their unit `vectors` or None, their `documents`), aligned
    with the input; sort by them, highest first."""
    scores = np.asarray(scores, dtype=np.float64)
    if not len(scores):
        return scores
    best = float(scores.max())
    mixed = scores / best if best > 0 else np.zeros(len(scores))
    if vectors is not None and len(scores) > 1:
        similar = gram(np.asarray(vectors, dtype=np.float32))
        np.fill_diagonal(similar, -np.inf)
        weights = np.exp((similar - similar.max(axis=1, keepdims=True)) / TEMPERATURE)
        weights /= weights.sum(axis=1, keepdims=True)
        mixed = (1.0 - SMOOTHING) * mixed + SMOOTHING * (weights @ mixed)
    out = mixed.copy()
    seen: dict[str, int] = {}
    for i in np.argsort(-mixed, kind="stable").tolist():
        above = seen.get(documents[i], 0)
        out[i] = mixed[i] * SAME_DOCUMENT**above
        seen[documents[i]] = above + 1
    return out
