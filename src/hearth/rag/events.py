"""RAG context events (seed 000): ingestion and queries, published through the outbox with their rows."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _RagEvent(Event):
    context: ClassVar[str] = "rag"


class CollectionCreated(_RagEvent):
    collection_id: str
    owner_id: str
    name: str


class CollectionDeleted(_RagEvent):
    collection_id: str
    owner_id: str


class CollectionShared(_RagEvent):
    """The owner gave another user read access (an admin-visible action: the audit log records it)."""

    collection_id: str
    owner_id: str
    user_id: str  # the user it is now shared with


class CollectionUnshared(_RagEvent):
    collection_id: str
    owner_id: str
    user_id: str  # the user who lost access


class DocumentIngestionRequested(_RagEvent):
    document_id: str
    collection_id: str
    job_id: str
    source: str
    content_hash: str


class DocumentIngested(_RagEvent):
    document_id: str
    collection_id: str
    job_id: str
    chunk_count: int
    replaced_version: str | None = None


class DocumentIngestionFailed(_RagEvent):
    document_id: str
    collection_id: str
    job_id: str
    reason: str


class DocumentDeleted(_RagEvent):
    document_id: str
    collection_id: str


class RAGQueryExecuted(_RagEvent):
    user_id: str
    collection_id: str
    mode: str
    top_k: int
    top_n: int
    source_chunk_ids: list[str]
    generated: bool
    latency_ms: dict[str, float]
