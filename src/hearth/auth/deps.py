"""PLACEHOLDER — replaced by the auth work. FastAPI dependencies: Bearer key → Principal."""

from __future__ import annotations

from fastapi import Request

from hearth.auth.principal import Principal
from hearth.platform.errors import HearthError


async def require_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HearthError(401, "missing API key: send Authorization: Bearer <key>", code="missing_api_key")
    principal = await request.app.state.platform.auth.authenticate(token.strip())
    if principal is None:
        raise HearthError(401, "invalid or revoked API key", code="invalid_api_key")
    return principal


async def require_admin(request: Request) -> Principal:
    principal = await require_principal(request)
    if not principal.is_admin:
        raise HearthError(403, "this route needs an admin key", code="admin_required")
    return principal
