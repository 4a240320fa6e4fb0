"""Chat tables: conversations and their messages, per-user preferences, and SQL-stored sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, new_id, utcnow
from hearth.platform.kit.time import UtcDateTime


class Conversation(TimestampMixin, Base):
    __tablename__ = "chat_conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    title_source: Mapped[str] = mapped_column(String(16), nullable=False, default="fallback")  # | model
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class Message(Base):
    """Immutable once stored: nothing in Hearth updates a row of this table."""

    __tablename__ = "chat_messages"
    # One position per message: concurrent turns of one conversation cannot both take the same place.
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[str] = mapped_column(String(32), index=True, nullable=False)
    session_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    seq: Mapped[int] = mapped_column(nullable=False)  # order within the conversation
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # user | assistant | system
    content: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="complete")  # | interrupted
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # Indexed: the retention sweep deletes by age.
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True, nullable=False)


class PreferencesRow(Base):
    __tablename__ = "chat_preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    rag_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    collection: Mapped[str | None] = mapped_column(String(128), nullable=True)
    voice: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)


class SessionRow(Base):
    __tablename__ = "chat_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # chat | voice
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    last_activity: Mapped[datetime] = mapped_column(UtcDateTime(), index=True, nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
