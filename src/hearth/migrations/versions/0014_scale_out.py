"""scale-out: named work leases, leases on ingestion jobs, claims on outbox rows

Revision ID: 0014
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=96), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_work_leases")),
    )
    with op.batch_alter_table("rag_jobs") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(length=96), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_rag_jobs_lease_expires_at", ["lease_expires_at"])
    with op.batch_alter_table("event_outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    with op.batch_alter_table("rag_jobs") as batch:
        batch.drop_index("ix_rag_jobs_lease_expires_at")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
    op.drop_table("work_leases")
