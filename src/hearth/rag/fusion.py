"""Fusing dense and BM25 rankings. All methods are kept so `hearth rag eval` can compare them; the default
was chosen on Cranfield (see docs/rag.md for the table)."""

from __future__ import annotations

import numpy as np

from hearth.rag.stores import Hit

METHODS = ("max", "convex", "rrf")


RRF_K = 60


def _combine(
    columns: list[tuple[np.ndarray, np.ndarray]], size: int, *, method: str, sparse_weight: float
) -> np.ndarray:
    """The fused score of each of `size` candidates. `columns` holds one (candidate positions, scores) pair
    per ranking, best first: dense, then sparse. A candidate missing from a ranking gets nothing from it."""
    fused = np.zeros(size, dtype=np.float64)
    for (at, values), weight in zip(columns, (1.0 - sparse_weight, sparse_weight), strict=True):
        if not len(values):
            continue
        if method == "rrf":
            fused[at] += 1.0 / (RRF_K + np.arange(1, len(values) + 1))
            continue
        values = np.asarray(values, dtype=np.float64)
        high = values.max()
        low = values.min() if method == "convex" else 0.0
        span = high - low
        fused[at] += weight * ((values - low) / span if span > 0 else np.ones(len(values)))
    return fused


def fuse(dense: list[Hit], sparse: list[Hit], *, method: str, sparse_weight: float) -> list[Hit]:
    """The configured fusion of two rankings: `max` (convex over max-normalised scores, the default), `convex`
    ((1 - w) * dense + w * sparse over min-max normalised scores) or `rrf` (reciprocal rank fusion: the sum of
    1 / (60 + rank)). Ties keep the order in which chunks first appear, dense first.

    `max` divides each ranking's scores by its best one, which keeps how far apart the scores are (a weak
    100th candidate is not pulled down to 0, nor a flat ranking spread out to [0, 1]) and does not depend on
    how deep the candidate list is."""
    position: dict[str, int] = {}
    candidates: list[Hit] = []
    columns = []
    for ranking in (dense, sparse):
        known = len(candidates)
        places = [position.setdefault(h[0], len(position)) for h in ranking]  # h[0]: the chunk id
        candidates.extend(h for h, i in zip(ranking, places, strict=True) if i >= known)
        scores = np.fromiter((h[3] for h in ranking), dtype=np.float64, count=len(ranking))
        columns.append((np.asarray(places, dtype=np.int64), scores))
    fused = _combine(columns, len(candidates), method=method, sparse_weight=sparse_weight)
    scores = fused.tolist()
    order = np.argsort(-fused, kind="stable").tolist()
    return [Hit(candidates[i][0], candidates[i][1], candidates[i][2], scores[i]) for i in order]


def fuse_rows(
    dense: tuple[np.ndarray, np.ndarray],
    sparse: tuple[np.ndarray, np.ndarray],
    *,
    method: str,
    sparse_weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`fuse` for rankings of keyword-index rows ((rows, scores) each): the fused rows, best first, and their
    scores. Same scores and the same tie order as `fuse`."""
    both = np.concatenate([dense[0], sparse[0]]).astype(np.int64)
    unique, first, inverse = np.unique(both, return_index=True, return_inverse=True)
    appearance = np.argsort(first, kind="stable")  # candidates in the order they first appear
    place = np.empty(len(unique), dtype=np.int64)
    place[appearance] = np.arange(len(unique))
    at = place[inverse.ravel()]
    split = len(dense[0])
    fused = _combine(
        [(at[:split], dense[1]), (at[split:], sparse[1])],
        len(unique),
        method=method,
        sparse_weight=sparse_weight,
    )
    order = np.argsort(-fused, kind="stable")
    return unique[appearance][order], fused[order]


def fuse_scores(dense: np.ndarray, sparse: np.ndarray, *, method: str, sparse_weight: float) -> np.ndarray:
    """`fuse` for candidates that both retrievers scored (aligned arrays): the fused score of each. A sparse
    score <= 0 counts as absent from the BM25 ranking, as it is in `fuse`."""
    columns = []
    for values, present in ((dense, np.ones(len(dense), dtype=bool)), (sparse, np.asarray(sparse) > 0)):
        values = np.asarray(values, dtype=np.float64)
        at = np.flatnonzero(present)
        at = at[np.argsort(-values[at], kind="stable")]  # each ranking best first, as `_combine` reads it
        columns.append((at, values[at]))
    return _combine(columns, len(dense), method=method, sparse_weight=sparse_weight)
