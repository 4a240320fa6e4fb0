"""Reranking by embedding similarity: cheap, and good enough when no cross-encoder is installed."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from hearth.gateway.backends.base import EmbeddingResult, RerankResult


class _Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str], model: str | None) -> EmbeddingResult: ...


class EmbeddingRerankBackend:
    """A `RerankBackend` scoring each document by the cosine similarity of its embedding to the query's."""

    def __init__(self, name: str, embedder: _Embedder, *, model_name: str | None = None) -> None:
        self.name = name
        self.embedder = embedder
        self.model_name = model_name
        # Calls go straight to the embedder, not through its deployment's slots, so share its limit.
        self.max_concurrency: int | None = getattr(embedder, "max_concurrency", None)

    async def start(self) -> None:
        # The embedder is started by whoever owns it too; starting twice is harmless and makes this
        # backend usable on its own.
        start: Any = getattr(self.embedder, "start", None)
        if start is not None:
            await start()

    async def close(self) -> None:
        pass  # the embedder is shared: its owner closes it

    async def rerank(self, query: str, documents: list[str], model: str | None) -> RerankResult:
        result = await self.embedder.embed([query, *documents], None)
        name = model or self.model_name or result.model
        if not documents:
            return RerankResult(scores=[], prompt_tokens=result.prompt_tokens, model=name)
        vectors = np.asarray(result.vectors, dtype=np.float32)
        # Normalise again: an embedder other than ours need not return unit vectors.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        scores = vectors[1:] @ vectors[0]
        return RerankResult(scores=[float(s) for s in scores], prompt_tokens=result.prompt_tokens, model=name)
