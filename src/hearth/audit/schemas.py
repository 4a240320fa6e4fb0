"""Audit log responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from hearth.platform.kit.schemas import ORMModel


class AuditEntryOut(ORMModel):
    id: int
    occurred_at: datetime
    action: str
    actor: str | None
    target: str
    details: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditEntryOut]
    has_more: bool
