"""tips: profile (preferences, contexts, consents and their log), connectors with vault entries and
signals, agent outputs and runs, tips (tip_scores) and their feedback

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tips_agent_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("agent_version", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("written", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_agent_runs")),
    )
    with op.batch_alter_table("tips_agent_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_agent_runs_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "agent_outputs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("agent_version", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_agent_outputs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_outputs")),
        sa.UniqueConstraint("user_id", "agent_id", name=op.f("uq_agent_outputs_user_id")),
    )
    with op.batch_alter_table("agent_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_outputs_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_agent_outputs_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "tip_scores",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("subject_ref", sa.String(length=200), nullable=True),
        sa.Column("subject_title", sa.String(length=500), nullable=True),
        sa.Column("contributing_agents", sa.JSON(), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("fallback_reason", sa.String(length=200), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("assembly_ms", sa.Float(), nullable=False),
        sa.Column("model_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tip_scores_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip_scores")),
    )
    with op.batch_alter_table("tip_scores", schema=None) as batch_op:
        batch_op.create_index("ix_tip_scores_user_created", ["user_id", "created_at"], unique=False)

    op.create_table(
        "tips_consent_log",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("outputs_deleted", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_consent_log_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_consent_log")),
    )
    with op.batch_alter_table("tips_consent_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_consent_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tips_consents",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_consents_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_tips_consents")),
    )
    op.create_table(
        "tips_contexts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_contexts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_contexts")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_tips_contexts_user_id")),
    )
    with op.batch_alter_table("tips_contexts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_contexts_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tips_credentials",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_credentials_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_credentials")),
    )
    with op.batch_alter_table("tips_credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_credentials_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tips_preferences",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("tone", sa.String(length=32), nullable=False),
        sa.Column("tip_length", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("work_start", sa.String(length=5), nullable=False),
        sa.Column("work_end", sa.String(length=5), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("disabled_agents", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_tips_preferences")),
    )
    op.create_table(
        "tip_feedback",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tip_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source_closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tip_id"], ["tip_scores.id"], name=op.f("fk_tip_feedback_tip_id_tip_scores"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tip_feedback_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tip_feedback")),
    )
    with op.batch_alter_table("tip_feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tip_feedback_tip_id"), ["tip_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tip_feedback_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tips_connectors",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("credential_id", sa.String(length=32), nullable=True),
        sa.Column("cursor", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_sync_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["tips_credentials.id"],
            name=op.f("fk_tips_connectors_credential_id_tips_credentials"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_connectors_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_connectors")),
    )
    with op.batch_alter_table("tips_connectors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_connectors_next_sync_at"), ["next_sync_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_tips_connectors_user_id"), ["user_id"], unique=False)

    op.create_table(
        "tips_signals",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("connector_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["tips_connectors.id"],
            name=op.f("fk_tips_signals_connector_id_tips_connectors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tips_signals_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tips_signals")),
        sa.UniqueConstraint("connector_id", "kind", "external_id", name=op.f("uq_tips_signals_connector_id")),
    )
    with op.batch_alter_table("tips_signals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tips_signals_connector_id"), ["connector_id"], unique=False)
        batch_op.create_index("ix_tips_signals_user_kind", ["user_id", "kind"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tips_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_tips_signals_user_kind")
        batch_op.drop_index(batch_op.f("ix_tips_signals_connector_id"))

    op.drop_table("tips_signals")
    with op.batch_alter_table("tips_connectors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_connectors_user_id"))
        batch_op.drop_index(batch_op.f("ix_tips_connectors_next_sync_at"))

    op.drop_table("tips_connectors")
    with op.batch_alter_table("tip_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tip_feedback_user_id"))
        batch_op.drop_index(batch_op.f("ix_tip_feedback_tip_id"))

    op.drop_table("tip_feedback")
    op.drop_table("tips_preferences")
    with op.batch_alter_table("tips_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_credentials_user_id"))

    op.drop_table("tips_credentials")
    with op.batch_alter_table("tips_contexts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_contexts_user_id"))

    op.drop_table("tips_contexts")
    op.drop_table("tips_consents")
    with op.batch_alter_table("tips_consent_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_consent_log_user_id"))

    op.drop_table("tips_consent_log")
    with op.batch_alter_table("tip_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_tip_scores_user_created")

    op.drop_table("tip_scores")
    with op.batch_alter_table("agent_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_outputs_expires_at"))
        batch_op.drop_index(batch_op.f("ix_agent_outputs_agent_id"))

    op.drop_table("agent_outputs")
    with op.batch_alter_table("tips_agent_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tips_agent_runs_agent_id"))

    op.drop_table("tips_agent_runs")
