"""The durable outbox: every event is a row before it is delivered anywhere."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin
from hearth.platform.kit.time import UtcDateTime


class OutboxEvent(TimestampMixin, Base):
    __tablename__ = "event_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # delivery order
    id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)  # event id, also Nats-Msg-Id
    context: Mapped[str] = mapped_column(String(32), nullable=False)  # stream: chat, voice, inference…
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(String(32), nullable=False)  # application/json | msgpack
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Indexed for the retention sweep, which deletes dispatched rows by age (outbox.prune).
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    # A pump pass claims its rows until then, so replicas relaying one outbox never send a row twice
    # (outbox.claim_due); a claim left by a dead replica simply expires.
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ConsumedEvent(TimestampMixin, Base):
    """Which consumer has handled which event: the ledger that makes consumers idempotent."""

    __tablename__ = "event_consumed"
    __table_args__ = (
        UniqueConstraint("consumer", "event_id"),
        Index("ix_event_consumed_created_at", "created_at"),  # the retention sweep deletes by age
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64), nullable=False)
    event_id: Mapped[str] = mapped_column(String(32), nullable=False)
