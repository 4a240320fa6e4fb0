"""FastAPI dependencies: Bearer key → Principal, and the admin check. On every /v1 request, so kept lean."""

from __future__ import annotations

from fastapi import Request

from hearth.auth.principal import Principal
from hearth.platform.errors import HearthError

# RFC 6750: a 401 tells the client which scheme to use.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_principal(request: Request) -> Principal:
    """The caller's Principal; 401 when the key is missing, unknown or revoked."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HearthError(
            401,
            "missing API key: send it as 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=_CHALLENGE,
        )
    principal = await request.app.state.platform.auth.authenticate(token)
    if principal is None:
        raise HearthError(401, "invalid or revoked API key", code="invalid_api_key", headers=_CHALLENGE)
    # Lets middleware and logging name the caller without a second lookup.
    request.state.principal = principal
    return principal


async def require_admin(request: Request) -> Principal:
    """The caller's Principal if it is an admin; 403 for a user key."""
    principal = await require_principal(request)
    if not principal.is_admin:
        raise HearthError(403, "this route needs an admin key", code="admin_required")
    return principal
