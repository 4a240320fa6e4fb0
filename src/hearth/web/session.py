"""The browser's side of sign-in: the session cookie's flags, the login form's CSRF cookie, and who is
signed in for a page (auth.web_sessions keeps the sessions themselves)."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote

from fastapi import Request, Response
from starlette.responses import RedirectResponse

from hearth.auth.deps import SESSION_COOKIE
from hearth.auth.web_sessions import SESSION_LIFETIME, ActiveSession, SignedIn

LOGIN_CSRF_COOKIE = "hearth_login_csrf"


def is_https(request: Request) -> bool:
    # uvicorn sets the scheme from X-Forwarded-Proto when the proxy is trusted (--forwarded-allow-ips).
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, signed: SignedIn) -> None:
    # HttpOnly: page scripts never see it (they use the CSRF token instead). SameSite=Lax: other sites'
    # forms and fetches do not carry it, while a link to a chat from elsewhere still opens signed in.
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request))


def login_csrf_token(request: Request) -> str:
    """A double-submit token for the sign-in form (there is no session yet to hold one): the form field
    and the cookie carry the same value, and another site can read neither."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_login_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def login_csrf_ok(request: Request, sent: str) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def form_csrf_ok(active: ActiveSession, sent: str) -> bool:
    return hmac.compare_digest(active.csrf_token.encode(), sent.encode())


async def current_session(request: Request) -> ActiveSession | None:
    """The signed-in browser's session, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    active = await request.app.state.platform.auth.web.resolve(token)
    if active is not None:
        request.state.principal = active.principal
        request.app.state.platform.auth.act_as(active.principal.username)
    return active


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never `//host` or `https://…`)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/chat"
