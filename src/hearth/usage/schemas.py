"""Usage report responses."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from hearth.platform.kit.schemas import ORMModel


class UsageOut(ORMModel):
    day: date
    user_id: str
    username: str | None
    key_id: str | None
    alias: str
    requests: int
    failures: int
    prompt_tokens: int
    completion_tokens: int


class UsageTotals(BaseModel):
    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class UsageReport(BaseModel):
    data: list[UsageOut]
    totals: UsageTotals
