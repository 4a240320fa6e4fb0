"""Everything the tips context holds about one user: exported as JSON-able rows (vault entries without
their secret) and erased (vault entries included). The integrator's GET /api/me/export and DELETE /api/me
call these through the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, inspect, select

from hearth.platform.db import Database
from hearth.tips.models import (
    AgentOutput,
    TipFeedback,
    TipsConnector,
    TipsConsent,
    TipsConsentLog,
    TipsContext,
    TipScore,
    TipsCredential,
    TipsPreferences,
    TipsSignal,
)

# Children before parents, so erase satisfies the foreign keys on every database.
TABLES: tuple[type[Any], ...] = (
    TipFeedback,
    TipScore,
    AgentOutput,
    TipsSignal,
    TipsConnector,
    TipsCredential,
    TipsConsentLog,
    TipsConsent,
    TipsContext,
    TipsPreferences,
)
SECRET_COLUMNS = {"tips_credentials": {"secret"}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    return value


async def export_user(db: Database, user_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    async with db.sessions() as s:
        for model in TABLES:
            hidden = SECRET_COLUMNS.get(model.__tablename__, set())
            columns = [c.key for c in inspect(model).mapper.column_attrs if c.key not in hidden]
            rows = await s.scalars(select(model).where(model.user_id == user_id))
            out[model.__tablename__] = [{c: _jsonable(getattr(r, c)) for c in columns} for r in rows]
    return out


async def erase_user(db: Database, user_id: str) -> None:
    async with db.transaction() as s:
        for model in TABLES:
            await s.execute(delete(model).where(model.user_id == user_id))
