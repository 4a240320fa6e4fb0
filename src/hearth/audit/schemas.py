"""Audit log responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp


class AuditEntryOut(ORMModel):
    id: int
    occurred_at: UtcTimestamp
    action: str
    actor: str | None
    target: str
    details: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditEntryOut]
    has_more: bool
