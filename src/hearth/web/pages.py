"""Page routes: sign in and out, and one route per screen. Pages carry no data of their own beyond the
layout; each screen's ES module (static/js/<screen>.js) loads what it shows from the JSON APIs. A page for
one object (a conversation, a document) first checks, through the owning context's service port, that the
signed-in user may see it, so another user's URL is a 404 page rather than an empty screen."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from hearth.auth.deps import SESSION_COOKIE
from hearth.chat.ports import SERVICE as CHAT
from hearth.platform.errors import HearthError
from hearth.rag.ports import SERVICE as RAG
from hearth.web import session as web
from hearth.web.render import forbidden, not_found, page
from hearth.web.throttle import SignInThrottle

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    active = await web.current_session(request)
    return RedirectResponse("/chat" if active else "/login", status_code=303)


# -- sign in and out -----------------------------------------------------------------------------------


async def _first_run(request: Request) -> bool:
    """No user has a password yet: the sign-in page explains how the admin sets the first one."""
    users = await request.app.state.platform.auth.list_users()
    return not any(u.password_hash for u in users)


async def _login_page(
    request: Request, *, next_path: str, error: str = "", status_code: int = 200, username: str = ""
) -> Response:
    token = web.login_csrf_token(request)
    response = page(
        request,
        "login.html",
        active=None,
        title="Sign in",
        status_code=status_code,
        next_path=next_path,
        error=error,
        username=username,
        login_csrf=token,
        first_run=await _first_run(request),
    )
    web.set_login_csrf(response, request, token)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if await web.current_session(request):
        return RedirectResponse(web.safe_next(next), status_code=303)
    return await _login_page(request, next_path=web.safe_next(next))


def _throttle(request: Request) -> SignInThrottle:
    """One throttle per app (per process), made on first use."""
    state = request.app.state
    if not hasattr(state, "sign_in_throttle"):
        state.sign_in_throttle = SignInThrottle()
    return state.sign_in_throttle


@router.post("/login")
async def login(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    api_key: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = web.safe_next(next)
    if not web.login_csrf_ok(request, csrf_token):
        return await _login_page(
            request,
            next_path=target,
            status_code=403,
            username=username,
            error="The sign-in form expired or did not come from this site. Please try again.",
        )
    sessions = request.app.state.platform.auth.web
    throttle = _throttle(request)
    address = request.client.host if request.client else ""
    who = "key" if api_key else username
    wait = throttle.retry_after(address, who)
    if wait:
        response = await _login_page(
            request,
            next_path=target,
            status_code=429,
            username=username,
            error=f"Too many failed attempts. Try again in {(wait + 59) // 60} minutes.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    if api_key:
        signed = await sessions.sign_in_key(key=api_key)
        failure = "That API key is unknown or revoked."
    else:
        signed = await sessions.sign_in_password(username=username, password=password)
        failure = "Wrong username or password."
    if signed is None:
        throttle.failed(address, who)
        return await _login_page(request, next_path=target, status_code=401, error=failure, username=username)
    throttle.succeeded(address, who)
    response = RedirectResponse(target, status_code=303)
    web.set_session_cookie(response, request, signed)
    response.delete_cookie(web.LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    active = await web.current_session(request)
    if active is not None:
        if not web.form_csrf_ok(active, csrf_token):
            return page(
                request,
                "error.html",
                active=active,
                title="Not signed out",
                status_code=403,
                heading="Not signed out",
                message="The form did not carry this session's CSRF token.",
            )
        await request.app.state.platform.auth.web.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    web.clear_session_cookie(response, request)
    return response


# -- screens -------------------------------------------------------------------------------------------


@router.get("/chat")
async def chat(request: Request) -> Response:
    return await user_page(request, "chat.html", "Chat", conversation_id="")


@router.get("/chat/{conversation_id}")
async def chat_conversation(conversation_id: str, request: Request) -> Response:
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    chat = request.app.state.platform.ports.require(CHAT)
    try:
        await chat.get_conversation(user_id=active.principal.user_id, conversation_id=conversation_id)
    except HearthError as exc:
        if exc.status == 404:
            return not_found(request, active, "conversation")
        raise
    return page(request, "chat.html", active=active, title="Chat", conversation_id=conversation_id)


@router.get("/documents")
async def documents(request: Request) -> Response:
    return await user_page(request, "documents.html", "Documents")


@router.get("/tips")
async def tips(request: Request) -> Response:
    return await user_page(request, "tips.html", "Tips")


@router.get("/documents/{document_id}")
async def document(document_id: str, request: Request) -> Response:
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    rag = request.app.state.platform.ports.require(RAG)
    try:
        found = await rag.get_document(user_id=active.principal.user_id, document_id=document_id)
    except HearthError as exc:
        if exc.status == 404:
            return not_found(request, active, "document")
        raise
    return page(request, "document.html", active=active, title=found.title or "Document", document=found)


@router.get("/notifications")
async def notifications(request: Request) -> Response:
    return await user_page(request, "notifications.html", "Notifications")


async def user_page(request: Request, template: str, title: str, **context: object) -> Response:
    """A signed-in user's screen (the layout and its ES module): the sign-in page when signed out."""
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    return page(request, template, active=active, title=title, **context)


async def admin_page(request: Request, template: str, title: str) -> Response:
    """An admin screen: sign-in page when signed out, 403 page for a user who is not an admin."""
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    if not active.principal.is_admin:
        return forbidden(request, active)
    return page(request, template, active=active, title=title)


@router.get("/admin/keys")
async def admin_keys(request: Request) -> Response:
    return await admin_page(request, "admin_keys.html", "API keys")


@router.get("/admin/users")
async def admin_users(request: Request) -> Response:
    return await admin_page(request, "admin_users.html", "Users")


@router.get("/account")
async def account(request: Request) -> Response:
    active = await web.current_session(request)
    if active is None:
        return web.to_login(request)
    return page(request, "account.html", active=active, title="Account", has_password=active.has_password)
