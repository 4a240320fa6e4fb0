"""Agent runs: one row per router or crew run, owned by the user who started it.

The graph's own state lives in LangGraph's checkpoint tables (written by its saver, see checkpoints.py);
this row is what Hearth lists, authorises and keeps the final result in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, new_id, utcnow
from hearth.platform.kit.time import UtcDateTime


class AgentRun(TimestampMixin, Base):
    __tablename__ = "agent_runs"
    __table_args__ = (Index("ix_agent_runs_user_kind_created", "user_id", "kind", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)  # also the thread id
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # router | crew
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="running")
    # running | completed | failed (an error stopped it: resumable) | interrupted (the process went away)
    query: Mapped[str] = mapped_column(Text, nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
