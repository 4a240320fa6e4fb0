"""What the rag context offers: retrieval over a user's collections, and the prompt that cites it.

Chat and voice depend on `Retriever` only, the agents' tools on `Retriever` and `DocumentReader`; `SERVICE`
is for rag's own routes."""

from __future__ import annotations

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


RETRIEVER: Port[Retriever] = Port("rag.retriever")
DOCUMENTS: Port[DocumentReader] = Port("rag.documents")  # the agents' document-fetch tool
SERVICE: Port[RagService] = Port("rag.service")
