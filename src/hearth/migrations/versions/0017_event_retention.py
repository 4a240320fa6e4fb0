"""events: indexes for the retention sweep, which deletes dispatched outbox rows and idempotency-ledger
entries by age

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_outbox") as batch:
        batch.create_index("ix_event_outbox_dispatched_at", ["dispatched_at"])
    with op.batch_alter_table("event_consumed") as batch:
        batch.create_index("ix_event_consumed_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("event_consumed") as batch:
        batch.drop_index("ix_event_consumed_created_at")
    with op.batch_alter_table("event_outbox") as batch:
        batch.drop_index("ix_event_outbox_dispatched_at")
