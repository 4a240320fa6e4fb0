"""RAG tables: collections (owned, optionally shared read-only), documents and their ingestion jobs.

Chunks and vectors live in the vector index and the BM25 index, tagged with the ingestion job (the
document *version*) that produced them. A document's `active_version` says which version queries may see,
so swapping versions is one SQL update: never both versions, never neither.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, utcnow
from hearth.platform.kit.leases import LeaseColumns
from hearth.platform.kit.time import UtcDateTime


class Collection(TimestampMixin, Base):
    __tablename__ = "rag_collections"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")


class CollectionShare(TimestampMixin, Base):
    """Read-only access to a collection for another user."""

    __tablename__ = "rag_collection_shares"

    collection_id: Mapped[str] = mapped_column(
        ForeignKey("rag_collections.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Document(TimestampMixin, Base):
    __tablename__ = "rag_documents"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("rag_collections.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str] = mapped_column(String(1024), nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    content_type: Mapped[str] = mapped_column(String(16), nullable=False)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # the latest job's status
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    job_id: Mapped[str] = mapped_column(String(32), nullable=False)  # the latest job
    active_version: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the indexed job
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)

    @property
    def queryable(self) -> bool:
        """A version of it is indexed."""
        return self.active_version is not None


class IngestJob(LeaseColumns, TimestampMixin, Base):
    """One version of a document on its way into the indexes: pending → extracting → embedding →
    indexed | failed. A running job is leased by the replica working it (platform/kit/leases.py)."""

    __tablename__ = "rag_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("rag_documents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    collection_id: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(String(16), nullable=False)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, nullable=False, default=dict)
    upload_path: Mapped[str] = mapped_column(String(1024), nullable=False)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
