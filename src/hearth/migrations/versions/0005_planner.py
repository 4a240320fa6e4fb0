"""planner context tables: model catalog, GPU profiles, benchmark rows

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "planner_models",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("params_b", sa.Float(), nullable=False),
        sa.Column("active_params_b", sa.Float(), nullable=False),
        sa.Column("layers", sa.Integer(), nullable=False),
        sa.Column("hidden_size", sa.Integer(), nullable=False),
        sa.Column("attention_heads", sa.Integer(), nullable=False),
        sa.Column("kv_heads", sa.Integer(), nullable=False),
        sa.Column("head_dim", sa.Integer(), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=False),
        sa.Column("license", sa.String(length=64), nullable=False),
        sa.Column("quantizations", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.Column("quality_source", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("checkpoints", sa.JSON(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planner_models")),
    )
    op.create_table(
        "planner_gpus",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("product_label", sa.String(length=128), nullable=False),
        sa.Column("memory_gb", sa.Float(), nullable=False),
        sa.Column("bandwidth_gbs", sa.Float(), nullable=False),
        sa.Column("tflops_bf16", sa.Float(), nullable=False),
        sa.Column("tflops_fp8", sa.Float(), nullable=True),
        sa.Column("interconnect_gbs", sa.Float(), nullable=False),
        sa.Column("max_per_node", sa.Integer(), nullable=False),
        sa.Column("price_per_hour", sa.Float(), nullable=False),
        sa.Column("price_source", sa.Text(), nullable=False),
        sa.Column("price_date", sa.Date(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_planner_gpus")),
    )
    metrics = [f"{m}_ms_{p}" for m in ("ttft", "itl", "e2e") for p in ("p50", "p95", "p99")] + [
        "requests_per_s",
        "output_tokens_per_s",
    ]
    op.create_table(
        "planner_benchmarks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("quantization", sa.String(length=32), nullable=False),
        sa.Column("gpu", sa.String(length=64), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Float(), nullable=True),
        sa.Column("request_rate", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Float(), nullable=True) for name in metrics],
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("measured_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hardware_label", sa.Text(), nullable=True),
        sa.Column("endpoint", sa.Text(), nullable=True),
        sa.Column("seed_key", sa.String(length=64), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planner_benchmarks")),
        sa.UniqueConstraint("seed_key", name=op.f("uq_planner_benchmarks_seed_key")),
    )
    op.create_index("ix_planner_benchmarks_model_gpu", "planner_benchmarks", ["model_id", "gpu"])


def downgrade() -> None:
    op.drop_index("ix_planner_benchmarks_model_gpu", table_name="planner_benchmarks")
    op.drop_table("planner_benchmarks")
    op.drop_table("planner_gpus")
    op.drop_table("planner_models")
