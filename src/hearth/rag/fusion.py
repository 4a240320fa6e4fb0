"""Fusing dense and BM25 rankings. All methods are kept so `hearth rag eval` can compare them; the default
was chosen on Cranfield (see docs/rag.md for the table)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from hearth.rag.stores import Hit

METHODS = ("max", "convex", "rrf")


def rrf(rankings: list[list[Hit]], *, k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the rankings a chunk appears in."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.chunk_id, hit)
    return _ranked(scores, first)


def convex(
    dense: list[Hit],
    sparse: list[Hit],
    *,
    sparse_weight: float,
    norm: Literal["minmax", "max"] = "minmax",
) -> list[Hit]:
    """(1 - w) * dense + w * sparse over normalised scores; a chunk missing from one ranking gets 0 there.

    `minmax` maps each ranking's scores to [0, 1]; `max` divides them by the ranking's best score, which keeps
    how far apart the scores are (a weak 100th candidate is not pulled down to 0, nor a flat ranking spread
    out to [0, 1]) and does not depend on how deep the candidate list is."""
    # Vectorised over the candidates (a hybrid query fuses ~200): each ranking's scores land in its own
    # column, in the order chunks first appear (dense first), which also breaks ties as a dict would.
    position: dict[str, int] = {}
    candidates: list[Hit] = []
    columns = []
    for ranking in (dense, sparse):
        known = len(candidates)
        places = [position.setdefault(h[0], len(position)) for h in ranking]  # h[0]: the chunk id
        candidates.extend(h for h, i in zip(ranking, places, strict=True) if i >= known)
        at = np.asarray(places, dtype=np.int64)
        columns.append((at, np.fromiter((h[3] for h in ranking), dtype=np.float64, count=len(ranking))))
    fused = np.zeros(len(candidates), dtype=np.float64)
    for (at, values), weight in zip(columns, (1.0 - sparse_weight, sparse_weight), strict=True):
        if not len(values):
            continue
        high = values.max()
        low = values.min() if norm == "minmax" else 0.0
        span = high - low
        fused[at] += weight * ((values - low) / span if span > 0 else np.ones(len(values)))
    scores = fused.tolist()
    order = np.argsort(-fused, kind="stable").tolist()
    return [Hit(candidates[i][0], candidates[i][1], candidates[i][2], scores[i]) for i in order]


def fuse(dense: list[Hit], sparse: list[Hit], *, method: str, sparse_weight: float) -> list[Hit]:
    """The configured fusion: `max` (convex over max-normalised scores, the default), `convex` (min-max) or
    `rrf`."""
    if method == "rrf":
        return rrf([dense, sparse])
    return convex(dense, sparse, sparse_weight=sparse_weight, norm="minmax" if method == "convex" else "max")


def fuse_scores(dense: np.ndarray, sparse: np.ndarray, *, method: str, sparse_weight: float) -> np.ndarray:
    """`fuse` for candidates that both retrievers scored (aligned arrays): the fused score of each. A sparse
    score <= 0 counts as absent from the BM25 ranking, as it is in `fuse`."""
    fused = np.zeros(len(dense), dtype=np.float64)
    weights = (0.5, 0.5) if method == "rrf" else (1.0 - sparse_weight, sparse_weight)
    for values, present, weight in (
        (np.asarray(dense, dtype=np.float64), np.ones(len(dense), dtype=bool), weights[0]),
        (np.asarray(sparse, dtype=np.float64), np.asarray(sparse) > 0, weights[1]),
    ):
        if not present.any():
            continue
        if method == "rrf":
            order = np.argsort(-np.where(present, values, -np.inf), kind="stable")
            ranks = np.empty(len(values))
            ranks[order] = np.arange(1, len(values) + 1)
            fused += np.where(present, 1.0 / (60 + ranks), 0.0)
            continue
        high = values[present].max()
        low = values[present].min() if method == "convex" else 0.0
        span = high - low
        normed = (values - low) / span if span > 0 else np.ones(len(values))
        fused += np.where(present, weight * normed, 0.0)
    return fused


def _ranked(scores: dict[str, float], first: dict[str, Hit]) -> list[Hit]:
    order = sorted(scores, key=lambda c: scores[c], reverse=True)
    return [Hit(c, first[c].document_id, first[c].version, scores[c]) for c in order]
