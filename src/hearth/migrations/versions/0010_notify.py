"""notify context tables: channel preferences, push subscriptions, notifications, deliveries and their
attempts (the delivery log), the in-app inbox

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "notify_preferences",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        _user_fk("notify_preferences"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notify_preferences")),
    )
    op.create_table(
        "notify_push_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=1024), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        _user_fk("notify_push_subscriptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_push_subscriptions")),
        sa.UniqueConstraint("user_id", "endpoint", name=op.f("uq_notify_push_subscriptions_user_id")),
    )
    op.create_index("ix_notify_push_subscriptions_user_id", "notify_push_subscriptions", ["user_id"])
    op.create_table(
        "notify_notifications",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _user_fk("notify_notifications"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_notifications")),
    )
    op.create_index(
        "ix_notify_notifications_dedupe", "notify_notifications", ["user_id", "dedupe_key", "created_at"]
    )
    op.create_table(
        "notify_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("notification_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notify_notifications.id"],
            name=op.f("fk_notify_deliveries_notification_id_notify_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_deliveries")),
    )
    op.create_index("ix_notify_deliveries_notification_id", "notify_deliveries", ["notification_id"])
    op.create_index("ix_notify_deliveries_user_id", "notify_deliveries", ["user_id"])
    op.create_index("ix_notify_deliveries_due", "notify_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "notify_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notify_deliveries.id"],
            name=op.f("fk_notify_attempts_delivery_id_notify_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_attempts")),
    )
    op.create_index("ix_notify_attempts_delivery_id", "notify_attempts", ["delivery_id"])
    op.create_table(
        "notify_inbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("notification_id", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=True),
        sa.Column("read_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        _user_fk("notify_inbox"),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notify_notifications.id"],
            name=op.f("fk_notify_inbox_notification_id_notify_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_inbox")),
    )
    op.create_index("ix_notify_inbox_user_id", "notify_inbox", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_notify_inbox_user_id", table_name="notify_inbox")
    op.drop_table("notify_inbox")
    op.drop_index("ix_notify_attempts_delivery_id", table_name="notify_attempts")
    op.drop_table("notify_attempts")
    op.drop_index("ix_notify_deliveries_due", table_name="notify_deliveries")
    op.drop_index("ix_notify_deliveries_user_id", table_name="notify_deliveries")
    op.drop_index("ix_notify_deliveries_notification_id", table_name="notify_deliveries")
    op.drop_table("notify_deliveries")
    op.drop_index("ix_notify_notifications_dedupe", table_name="notify_notifications")
    op.drop_table("notify_notifications")
    op.drop_index("ix_notify_push_subscriptions_user_id", table_name="notify_push_subscriptions")
    op.drop_table("notify_push_subscriptions")
    op.drop_table("notify_preferences")
