"""The notify context's tables: a user's channel preferences and push subscriptions, each notification,
its deliveries (one per channel and target), every attempt of a delivery, and the in-app inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, new_id, utcnow
from hearth.platform.kit.time import UtcDateTime


class NotifyPreferences(Base):
    __tablename__ = "notify_preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    channels: Mapped[list[str]] = mapped_column(JSON, nullable=False)  # e.g. ["inapp", "email", "webpush"]
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    quiet_start: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM", the user's time
    quiet_end: Mapped[str | None] = mapped_column(String(5), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class PushSubscription(TimestampMixin, Base):
    """A browser's Push API subscription: where to POST, and the keys to encrypt for it (RFC 8291)."""

    __tablename__ = "notify_push_subscriptions"
    __table_args__ = (UniqueConstraint("user_id", "endpoint"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    endpoint: Mapped[str] = mapped_column(String(1024), nullable=False)
    p256dh: Mapped[str] = mapped_column(String(128), nullable=False)  # the browser's P-256 key, base64url
    auth: Mapped[str] = mapped_column(String(64), nullable=False)  # its 16-byte auth secret, base64url


class Notification(TimestampMixin, Base):
    __tablename__ = "notify_notifications"
    __table_args__ = (Index("ix_notify_notifications_dedupe", "user_id", "dedupe_key", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class Delivery(TimestampMixin, Base):
    """One notification on one channel to one target: pending → sending → sent | retrying → … | failed;
    deferred while the user's quiet hours last."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (Index("ix_notify_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notify_notifications.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)  # inapp | email | webpush
    target: Mapped[str] = mapped_column(String(1024), nullable=False)  # inbox, an address, a subscription id
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class DeliveryAttempt(Base):
    """The delivery log: one row per attempt, with its outcome."""

    __tablename__ = "notify_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("notify_deliveries.id", ondelete="CASCADE"), index=True, nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # sent | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class InboxItem(TimestampMixin, Base):
    __tablename__ = "notify_inbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    notification_id: Mapped[str] = mapped_column(
        ForeignKey("notify_notifications.id", ondelete="CASCADE"), nullable=False
    )
    topic: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


__all__ = [
    "Delivery",
    "DeliveryAttempt",
    "InboxItem",
    "Notification",
    "NotifyPreferences",
    "PushSubscription",
]
