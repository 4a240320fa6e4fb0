"""voice context tables

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("enable_rag", sa.Boolean(), nullable=False),
        sa.Column("collection", sa.String(length=128), nullable=True),
        sa.Column("streaming", sa.Boolean(), nullable=False),
        sa.Column("transcription", sa.Text(), nullable=False),
        sa.Column("audio_path", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_voice_requests_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_requests")),
    )
    with op.batch_alter_table("voice_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_requests_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_voice_requests_created_at"), ["created_at"], unique=False)

    op.create_table(
        "voice_responses",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("response_text", sa.Text(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("audio_format", sa.String(length=8), nullable=False),
        sa.Column("audio_ms", sa.Integer(), nullable=False),
        sa.Column("audio_path", sa.String(length=256), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("stages_ms", sa.JSON(), nullable=False),
        sa.Column("rag_docs_used", sa.Integer(), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["voice_requests.id"],
            name=op.f("fk_voice_responses_request_id_voice_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_responses")),
        sa.UniqueConstraint("request_id", name=op.f("uq_voice_responses_request_id")),
    )


def downgrade() -> None:
    op.drop_table("voice_responses")
    with op.batch_alter_table("voice_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_requests_created_at"))
        batch_op.drop_index(batch_op.f("ix_voice_requests_user_id"))
    op.drop_table("voice_requests")
