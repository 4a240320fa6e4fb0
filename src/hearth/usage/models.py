"""The usage ledger's table: one row per day, user, key and alias, summed from InferenceUsage events."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base
from hearth.platform.kit.time import UtcDateTime, utcnow

NO_KEY = ""  # key_id of calls made without an API key (the platform's own); NULL would defeat the unique key


class UsageDay(Base):
    __tablename__ = "usage_daily"
    __table_args__ = (UniqueConstraint("day", "user_id", "key_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # UTC
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    alias: Mapped[str] = mapped_column(String(128), nullable=False)
    requests: Mapped[int] = mapped_column(BigInteger, nullable=False)
    failures: Mapped[int] = mapped_column(BigInteger, nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
