"""Route: GET /api/admin/audit (admin keys only), the admin actions newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from hearth.audit.actions import ACTIONS
from hearth.audit.log import AuditLog
from hearth.audit.ports import SERVICE
from hearth.audit.schemas import AuditEntryOut, AuditList
from hearth.auth.deps import AdminUser
from hearth.platform.deps import port
from hearth.platform.kit.openapi import errors
from hearth.platform.kit.repository import MAX_SQL_INT

router = APIRouter(tags=["audit"])

Log = Annotated[AuditLog, Depends(port(SERVICE))]


@router.get("/api/admin/audit", response_model=AuditList, responses=errors(400))
async def audit(
    log: Log,
    _: AdminUser,
    action: Annotated[str | None, Query(json_schema_extra={"enum": [*ACTIONS, None]})] = None,
    actor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> AuditList:
    """Users created/disabled, keys created/revoked, collections shared/unshared and plans deployed."""
    page = await log.entries(action=action, actor=actor, limit=limit, offset=offset)
    return AuditList(data=[AuditEntryOut.model_validate(e) for e in page.entries], has_more=page.has_more)
