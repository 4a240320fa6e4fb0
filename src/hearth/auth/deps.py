"""FastAPI dependencies: Bearer key → Principal, the admin check, and their `Annotated` aliases.

Routes declare `principal: CurrentUser` or `admin: AdminUser`; the WebSocket route authenticates with the
same `authenticate` (its key may also arrive in a first message, since browsers cannot set headers there).
On every /v1 request, so kept lean."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from hearth.auth.principal import Principal
from hearth.platform.errors import HearthError

# RFC 6750: a 401 tells the client which scheme to use.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def bearer_token(headers: Headers) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" when there is none."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def authenticate(connection: HTTPConnection, token: str) -> Principal:
    """The Principal of an API key; 401 when it is missing, unknown or revoked."""
    if not token:
        raise HearthError(
            401,
            "missing API key: send it as 'Authorization: Bearer <key>'",
            code="missing_api_key",
            headers=_CHALLENGE,
        )
    principal = await connection.app.state.platform.auth.authenticate(token)
    if principal is None:
        raise HearthError(401, "invalid or revoked API key", code="invalid_api_key", headers=_CHALLENGE)
    # Lets middleware and logging name the caller without a second lookup.
    connection.state.principal = principal
    return principal


async def require_principal(request: Request) -> Principal:
    """The caller's Principal; 401 when the key is missing, unknown or revoked."""
    return await authenticate(request, bearer_token(request.headers))


async def require_admin(request: Request) -> Principal:
    """The caller's Principal if it is an admin; 403 for a user key."""
    principal = await require_principal(request)
    if not principal.is_admin:
        raise HearthError(403, "this route needs an admin key", code="admin_required")
    return principal


CurrentUser = Annotated[Principal, Depends(require_principal)]
AdminUser = Annotated[Principal, Depends(require_admin)]
