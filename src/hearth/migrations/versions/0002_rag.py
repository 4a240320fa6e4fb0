"""rag context tables: collections, shares, documents, ingestion jobs

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rag_collections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_rag_collections_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_collections")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_rag_collections_owner_id")),
    )
    op.create_table(
        "rag_collection_shares",
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["rag_collections.id"],
            name=op.f("fk_rag_collection_shares_collection_id_rag_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_rag_collection_shares_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("collection_id", "user_id", name=op.f("pk_rag_collection_shares")),
    )
    op.create_table(
        "rag_documents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("content_type", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("active_version", sa.String(length=32), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["rag_collections.id"],
            name=op.f("fk_rag_documents_collection_id_rag_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_documents")),
        sa.UniqueConstraint("collection_id", "source", name=op.f("uq_rag_documents_collection_id")),
    )
    op.create_index(op.f("ix_rag_documents_collection_id"), "rag_documents", ["collection_id"])
    op.create_table(
        "rag_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("collection_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("upload_path", sa.String(length=1024), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _created(),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["rag_documents.id"],
            name=op.f("fk_rag_jobs_document_id_rag_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_jobs")),
    )
    op.create_index(op.f("ix_rag_jobs_document_id"), "rag_jobs", ["document_id"])
    op.create_index(op.f("ix_rag_jobs_status"), "rag_jobs", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rag_jobs_status"), table_name="rag_jobs")
    op.drop_index(op.f("ix_rag_jobs_document_id"), table_name="rag_jobs")
    op.drop_table("rag_jobs")
    op.drop_index(op.f("ix_rag_documents_collection_id"), table_name="rag_documents")
    op.drop_table("rag_documents")
    op.drop_table("rag_collection_shares")
    op.drop_table("rag_collections")
