"""Fusing dense and BM25 rankings. Both methods are kept so `hearth rag eval` can compare them; the default
was chosen on Cranfield (see docs/rag.md for the table)."""

from __future__ import annotations

from hearth.rag.stores import Hit


def rrf(rankings: list[list[Hit]], *, k: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the rankings a chunk appears in."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.chunk_id, hit)
    return _ranked(scores, first)


def convex(dense: list[Hit], sparse: list[Hit], *, sparse_weight: float) -> list[Hit]:
    """Min-max normalise each ranking's scores to [0, 1], then (1 - w) * dense + w * sparse; a chunk missing
    from one ranking gets 0 there."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking, weight in ((dense, 1.0 - sparse_weight), (sparse, sparse_weight)):
        if not ranking:
            continue
        values = [h.score for h in ranking]
        low, high = min(values), max(values)
        span = high - low
        for hit in ranking:
            norm = (hit.score - low) / span if span > 0 else 1.0
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + weight * norm
            first.setdefault(hit.chunk_id, hit)
    return _ranked(scores, first)


def _ranked(scores: dict[str, float], first: dict[str, Hit]) -> list[Hit]:
    order = sorted(scores, key=lambda c: scores[c], reverse=True)
    return [Hit(c, first[c].document_id, first[c].version, scores[c]) for c in order]
