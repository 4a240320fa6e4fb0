"""Page rendering: Jinja2 (autoescaped) with the layout's shared context and a strict Content-Security-Policy
whose nonce lets only our own import map run inline."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from hearth.auth.web_sessions import ActiveSession
from hearth.web.assets import vendor_ready
from hearth.web.screens import SCREENS

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def csp(nonce: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def page(
    request: Request,
    template: str,
    *,
    active: ActiveSession | None,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    principal = active.principal if active is not None else None
    screens = [s for s in SCREENS if principal is not None and (principal.is_admin or not s.admin)]
    response = templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "principal": principal,
            "csrf_token": active.csrf_token if active is not None else "",
            "screens": screens,
            "path": request.url.path,
            "nonce": nonce,
            "vendor_ready": vendor_ready(),
            **context,
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = csp(nonce)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def not_found(request: Request, active: ActiveSession | None, what: str = "page") -> HTMLResponse:
    """The same page for what does not exist and what belongs to someone else."""
    return page(
        request,
        "error.html",
        active=active,
        title="Not found",
        status_code=404,
        heading="Not found",
        message=f"This {what} does not exist, or it is not yours.",
    )


def forbidden(request: Request, active: ActiveSession | None) -> HTMLResponse:
    return page(
        request,
        "error.html",
        active=active,
        title="Admins only",
        status_code=403,
        heading="Admins only",
        message="This screen needs an admin account.",
    )
