"""FastAPI dependencies: Bearer key (or the web UI's session cookie) → Principal, the admin check, and their
`Annotated` aliases.

Routes declare `principal: CurrentUser` or `admin: AdminUser`; the WebSocket route authenticates with the
same `authenticate` (its key may also arrive in a first message, since browsers cannot set headers there).
On every /v1 request, so kept lean: a request with a Bearer header never looks at cookies.

A request without a Bearer header but with the session cookie (auth.web_sessions) is the web UI's: a
state-changing one (not GET/HEAD/OPTIONS) must carry the session's CSRF token in `X-CSRF-Token`, or it is
403. Bearer requests need no CSRF token: a browser never attaches that header by itself."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from hearth.auth.principal import Principal
from hearth.platform.errors import HearthError

# RFC 6750: a 401 tells the client which scheme to use.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
SESSION_COOKIE = "hearth_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    """The caller's Principal; 401 when the key (or session) is missing, unknown or revoked."""
    token = bearer_token(request.headers)
    if not token:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return await authenticate_session(request, cookie)
    return await authenticate(request, token)


async def authenticate_session(request: Request, cookie: str) -> Principal:
    """The Principal of a web session cookie; 401 when it is unknown or expired, 403 when a state-changing
    request lacks the session's CSRF token."""
    active = await request.app.state.platform.auth.web.resolve(cookie)
    if active is None:
        raise HearthError(
            401, "your session has ended: sign in again", code="invalid_session", headers=_CHALLENGE
        )
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), active.csrf_token.encode()):
            raise HearthError(
                403,
                f"missing or wrong CSRF token: send the page's token in the {CSRF_HEADER} header",
                code="csrf_failed",
            )
    request.state.principal = active.principal
    request.app.state.platform.auth.act_as(active.principal.username)
    return active.principal


def same_origin(connection: HTTPConnection) -> bool:
    """Whether the connection's `Origin` is this server's own (scheme, host and port as the browser used
    them). WebSocket handshakes carry cookies but are covered neither by CORS nor by our CSRF header, and
    SameSite does not separate two origins of one site (another port, a sibling subdomain): a page elsewhere
    could open the socket with the user's cookie. Browsers always send Origin on a WebSocket handshake."""
    origin = connection.headers.get("origin", "").rstrip("/").lower()
    host = connection.headers.get("host", "").lower()
    if not origin or not host:
        return False
    # uvicorn reports ws/wss (from X-Forwarded-Proto too, for trusted proxies); pages are http/https.
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    expected = f"{scheme}://{host}"
    # Browsers leave a default port out of Origin; a Host header may carry it.
    default_port = {"http": ":80", "https": ":443"}.get(scheme, "")
    return origin in (expected, expected.removesuffix(default_port) if default_port else expected)


async def authenticate_websocket_session(connection: HTTPConnection, cookie: str) -> Principal:
    """The Principal of a web session cookie on a WebSocket handshake: 403 `cross_origin` unless the page
    that opened it is this server's own; 401 when the session is unknown or expired."""
    if not same_origin(connection):
        raise HearthError(
            403,
            "this WebSocket was opened from another site's page: only Hearth's own pages may use the "
            "session cookie (other clients send an API key)",
            code="cross_origin",
        )
    active = await connection.app.state.platform.auth.web.resolve(cookie)
    if active is None:
        raise HearthError(
            401, "your session has ended: sign in again", code="invalid_session", headers=_CHALLENGE
        )
    connection.state.principal = active.principal
    connection.app.state.platform.auth.act_as(active.principal.username)
    return active.principal


async def require_admin(request: Request) -> Principal:
    """The caller's Principal if it is an admin; 403 for a user key."""
    principal = await require_principal(request)
    if not principal.is_admin:
        raise HearthError(403, "this route needs an admin key", code="admin_required")
    return principal


CurrentUser = Annotated[Principal, Depends(require_principal)]
AdminUser = Annotated[Principal, Depends(require_admin)]
