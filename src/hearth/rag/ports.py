"""What the rag context offers: retrieval over a user's collections, and the prompt that cites it; the
evaluation of retrieval on judged queries.

Chat and voice depend on `Retriever` only, the agents' tools on `Retriever` and `DocumentReader`; workflows
(the RAG evaluation pipeline) on `RetrievalEvaluator`; `SERVICE` is for rag's own routes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hearth.platform.ports import Port
from hearth.rag.schemas import DocumentOut, RagSource

if TYPE_CHECKING:
    from hearth.rag.service import RagService


class Retriever(Protocol):
    async def retrieve(
        self,
        *,
        user_id: str,
        collection: str,
        query: str,
        top_k: int = 10,
        top_n: int = 3,
        mode: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[RagSource]:
        """The best chunks of a collection the user may read (404 for a missing or foreign one)."""
        ...

    def answer_messages(self, *, question: str, sources: list[RagSource]) -> list[dict[str, Any]]:
        """OpenAI chat messages that answer `question` from numbered `sources`."""
        ...

    def check_answer(self, *, question: str, answer: str, sources: list[RagSource]) -> dict[str, Any]:
        """The answer to keep, checked against `sources`: {"answer", "answer_mode" ("generated" or
        "extractive_fallback" when the generated one was not grounded), "answer_note" (why), "citations"
        (each cited [n] with its file name)}."""
        ...


class DocumentReader(Protocol):
    async def get_document(self, *, user_id: str, document_id: str) -> DocumentOut:
        """One document of a collection the user may read (404 otherwise)."""
        ...


class RetrievalEvaluator(Protocol):
    def load_judgements(
        self, *, queries: Path, qrels: Path, fmt: str
    ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
        """(judged query id → text, query id → {doc source → gain}) from BEIR, TREC or SMART files;
        ValueError for an unknown format or files in which no query has judgements."""
        ...

    async def evaluate(
        self,
        *,
        user_id: str,
        collection: str,
        queries: dict[str, str],
        qrels: dict[str, dict[str, float]],
        mode: str,
        depth: int = 100,
    ) -> dict[str, float]:
        """nDCG@10, Recall@100 and MRR@10 of one retrieval mode (no rerank, `depth` chunks per query) over
        a collection the user may read: {"ndcg10", "recall100", "mrr10", "queries"}."""
        ...


RETRIEVER: Port[Retriever] = Port("rag.retriever")
DOCUMENTS: Port[DocumentReader] = Port("rag.documents")  # the agents' document-fetch tool
EVALUATOR: Port[RetrievalEvaluator] = Port("rag.evaluator")
SERVICE: Port[RagService] = Port("rag.service")
