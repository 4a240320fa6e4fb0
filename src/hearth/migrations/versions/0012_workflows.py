"""workflows: pipelines, experiments, runs, steps, step logs and artifacts

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "wf_pipelines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        _ts("created_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_pipelines")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_wf_pipelines_name")),
    )
    op.create_table(
        "wf_experiments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _ts("created_at", False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_wf_experiments_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_experiments")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_wf_experiments_owner_id")),
    )
    op.create_table(
        "wf_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("experiment_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("executor", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at"),
        _ts("finished_at"),
        _ts("created_at", False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_wf_runs_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["wf_pipelines.id"], name=op.f("fk_wf_runs_pipeline_id_wf_pipelines")
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["wf_experiments.id"],
            name=op.f("fk_wf_runs_experiment_id_wf_experiments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_runs")),
    )
    op.create_index("ix_wf_runs_owner_created", "wf_runs", ["owner_id", "created_at"])
    op.create_index("ix_wf_runs_status_executor", "wf_runs", ["status", "executor"])
    op.create_index("ix_wf_runs_experiment_id", "wf_runs", ["experiment_id"])
    op.create_table(
        "wf_steps",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        _ts("heartbeat_at"),
        _ts("created_at", False),
        _ts("ready_at"),
        _ts("started_at"),
        _ts("finished_at"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wf_runs.id"], name=op.f("fk_wf_steps_run_id_wf_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_steps")),
        sa.UniqueConstraint("run_id", "name", name=op.f("uq_wf_steps_run_id")),
    )
    op.create_index("ix_wf_steps_status", "wf_steps", ["status"])
    op.create_table(
        "wf_step_logs",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("at", False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wf_runs.id"], name=op.f("fk_wf_step_logs_run_id_wf_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_wf_step_logs")),
    )
    op.create_index("ix_wf_step_logs_run_seq", "wf_step_logs", ["run_id", "seq"])
    op.create_table(
        "wf_artifacts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("inline", sa.Boolean(), nullable=False),
        _ts("created_at", False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wf_runs.id"], name=op.f("fk_wf_artifacts_run_id_wf_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_artifacts")),
        sa.UniqueConstraint("run_id", "step", "name", name=op.f("uq_wf_artifacts_run_id")),
    )


def downgrade() -> None:
    op.drop_table("wf_artifacts")
    op.drop_index("ix_wf_step_logs_run_seq", table_name="wf_step_logs")
    op.drop_table("wf_step_logs")
    op.drop_index("ix_wf_steps_status", table_name="wf_steps")
    op.drop_table("wf_steps")
    op.drop_index("ix_wf_runs_experiment_id", table_name="wf_runs")
    op.drop_index("ix_wf_runs_status_executor", table_name="wf_runs")
    op.drop_index("ix_wf_runs_owner_created", table_name="wf_runs")
    op.drop_table("wf_runs")
    op.drop_table("wf_experiments")
    op.drop_table("wf_pipelines")
