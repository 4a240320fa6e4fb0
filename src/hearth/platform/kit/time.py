"""Timestamps are timezone-aware UTC everywhere: in Python, on PostgreSQL, and on SQLite (which stores no
zone, so values read back naive; `UtcDateTime` puts the zone back on the way out)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator
from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` with UTC attached when it is naive (a naive value is UTC by Hearth's convention)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# A response field's timestamp: always with its offset, so it is a valid RFC 3339 `date-time` (what the
# OpenAPI document promises) even when a value was built naive (a row read back from SQLite, a session).
UtcTimestamp = Annotated[datetime, AfterValidator(as_utc)]


class UtcDateTime(TypeDecorator[datetime]):
    """A `DateTime(timezone=True)` column that always reads back aware UTC, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite compares stored text; keep every stored value in one zone so comparisons hold.
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)
