"""Route: GET /api/admin/usage (admin keys only), the usage ledger with filters."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends

from hearth.auth.deps import AdminUser
from hearth.platform.deps import port
from hearth.platform.kit.openapi import errors
from hearth.usage.ledger import UsageLedger, usage_filter
from hearth.usage.ports import SERVICE
from hearth.usage.schemas import UsageOut, UsageReport, UsageTotals

router = APIRouter(tags=["usage"])

Ledger = Annotated[UsageLedger, Depends(port(SERVICE))]


@router.get("/api/admin/usage", response_model=UsageReport, responses=errors(400, 404))
async def usage(
    ledger: Ledger,
    _: AdminUser,
    day: date | None = None,
    since: date | None = None,
    until: date | None = None,
    user: str | None = None,
    key_id: str | None = None,
    alias: str | None = None,
) -> UsageReport:
    """Requests, failures and tokens per day, user, key and alias (UTC days; since/until inclusive)."""
    where = usage_filter(day=day, since=since, until=until, user=user, key_id=key_id, alias=alias)
    lines = [UsageOut.model_validate(line) for line in await ledger.report(where=where)]
    totals = UsageTotals(
        requests=sum(x.requests for x in lines),
        failures=sum(x.failures for x in lines),
        prompt_tokens=sum(x.prompt_tokens for x in lines),
        completion_tokens=sum(x.completion_tokens for x in lines),
    )
    return UsageReport(data=lines, totals=totals)
