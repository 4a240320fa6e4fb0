"""planner: benchmark rows say whether they are online (serving) or offline (max throughput), and name
the engine and the method that measured them

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("planner_benchmarks") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=16), nullable=False, server_default="online"))
        batch.add_column(sa.Column("engine", sa.Text(), nullable=True))
        batch.add_column(sa.Column("method", sa.Text(), nullable=True))
    # Rows stored before: a row without a load (no concurrency, no rate) was an offline throughput run.
    op.execute(
        "UPDATE planner_benchmarks SET mode = 'offline' WHERE concurrency IS NULL AND request_rate IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("planner_benchmarks") as batch:
        batch.drop_column("method")
        batch.drop_column("engine")
        batch.drop_column("mode")
