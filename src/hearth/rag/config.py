"""RAG settings as the service reads them (built from hearth.config.Settings in wiring.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hearth.rag import rerank as rerank_defaults
from hearth.rag.schemas import Mode


@dataclass
class RagConfig:
    data_dir: Path
    chunk_tokens: int = 180
    chunk_overlap: int = 30
    title_tokens: int = 40
    default_mode: Mode = "hybrid"
    fusion: str = "max"
    sparse_weight: float = 0.3
    candidates: int = 100
    feedback: int = 3  # hybrid: top fused chunks used for pseudo-relevance feedback (0: off)
    feedback_terms: int = 10
    # Collections of up to this many chunks are searched exactly over the vectors beside the keyword index
    # (rag/retrieval.py: exact_dense), not through the vector store; wired to the ANN threshold, below which
    # LanceDB searches by brute force too.
    exact_rows: int = 20_000
    embed_batch: int = 128
    worker_batch: int = 256
    embedder: str = "embedder"
    reranker: str = "reranker"
    # True when the `reranker` alias routes to no model but the embedding reranker (the default catalogue):
    # `rerank: true` then runs the built-in reranker (rag/rerank.py) instead of a gateway call.
    builtin_rerank: bool = True
    rerank_depth: int = rerank_defaults.DEPTH
    chat_model: str = "chat"
    # How long a claimed job stays this replica's without a heartbeat: a replica killed mid-batch hands its
    # jobs to the others after this (platform/kit/leases.py).
    lease_seconds: float = 30.0

    @property
    def uploads(self) -> Path:
        """Where queued files wait for the worker, named by their job id."""
        return self.data_dir / "rag" / "uploads"
