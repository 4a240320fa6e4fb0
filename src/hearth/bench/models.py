"""The bench context's one table: the short runs started from the web UI's Bench screen (`bench_runs`),
kept so the screen can show past runs. Runs of `hearth bench run` stay files in the home's bench-results/
and, when labelled, planner rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, TimestampMixin, new_id


class BenchRun(TimestampMixin, Base):
    __tablename__ = "bench_runs"
    __table_args__ = (Index("ix_bench_runs_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    target: Mapped[str] = mapped_column(String(512), nullable=False)  # "alias:<name>" or the endpoint's URL
    model: Mapped[str] = mapped_column(String(256), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # completed | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The request as asked (levels, requests, tokens; never an API key) and one summary per load point.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
