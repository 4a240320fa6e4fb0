"""The audit log's table: one row per admin action, written from the event that recorded it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base
from hearth.platform.kit.time import UtcDateTime


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False, index=True)  # e.g. "key.revoked"
    actor: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # a username
    target: Mapped[str] = mapped_column(String(256), nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
