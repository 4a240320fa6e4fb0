"""Routes: /api/admin/users and /api/admin/keys (admin keys only), and /api/me (any valid key or session)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from hearth.auth.deps import AdminUser, CurrentUser
from hearth.auth.schemas import (
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    Me,
    PasswordChange,
    PasswordSet,
    UserCreate,
    UserList,
    UserOut,
    UserUpdate,
)
from hearth.auth.service import AuthService
from hearth.auth.web_sessions import WEB_KEY_PREFIX
from hearth.platform.errors import HearthError
from hearth.platform.kit.openapi import errors

router = APIRouter(tags=["auth"])


async def _auth(request: Request) -> AuthService:
    return request.app.state.platform.auth


# The platform owns authentication (every context's routes use it), so routes reach it there.
Auth = Annotated[AuthService, Depends(_auth)]


@router.post("/api/admin/users", status_code=201, response_model=UserOut, responses=errors(409))
async def create_user(body: UserCreate, _: AdminUser, auth: Auth) -> UserOut:
    """Create a user."""
    user = await auth.create_user(username=body.username, role=body.role, premium=body.premium)
    return UserOut.of(user)


@router.get("/api/admin/users", response_model=UserList)
async def list_users(_: AdminUser, auth: Auth) -> UserList:
    """All users."""
    return UserList(data=[UserOut.of(u) for u in await auth.list_users()])


@router.patch("/api/admin/users/{username}", response_model=UserOut, responses=errors(404, 409))
async def update_user(username: str, body: UserUpdate, admin: AdminUser, auth: Auth) -> UserOut:
    """Disable a user (their keys, key sessions and password sessions stop working at once) or enable
    them again. An admin cannot disable themselves: that could leave nobody to undo it."""
    user = await auth.get_user_by_name(username=username)
    if user is None:
        raise HearthError(404, f"no user {username!r}", param="username", code="user_not_found")
    if body.disabled and user.id == admin.user_id:
        raise HearthError(409, "you cannot disable yourself", param="username", code="cannot_disable_self")
    return UserOut.of(await auth.set_user_disabled(user_id=user.id, disabled=body.disabled))


@router.put("/api/admin/users/{username}/password", status_code=204, responses=errors(404))
async def set_password(username: str, body: PasswordSet, _: AdminUser, auth: Auth) -> Response:
    """Set or reset a user's web sign-in password; their password sessions end."""
    await auth.web.set_password(username=username, password=body.password)
    return Response(status_code=204)


@router.post("/api/admin/keys", status_code=201, response_model=KeyCreated, responses=errors(404))
async def create_key(body: KeyCreate, _: AdminUser, auth: Auth) -> KeyCreated:
    """Create a key for a user; the plaintext is in this response and nowhere else."""
    row, token = await auth.create_key(
        username=body.user,
        name=body.name,
        priority=body.priority,
        rpm_limit=body.rpm_limit,
        tpm_limit=body.tpm_limit,
    )
    return KeyCreated.of(row, body.user, key=token)


@router.get("/api/admin/keys", response_model=KeyList, responses=errors(404))
async def list_keys(_: AdminUser, auth: Auth, user: str | None = None) -> KeyList:
    """All keys, or one user's keys with ?user=NAME."""
    keys = await auth.list_keys(username=user)
    return KeyList(data=keys)


@router.delete("/api/admin/keys/{key_id}", response_model=KeyOut, responses=errors(409))
async def revoke_key(key_id: str, _: AdminUser, auth: Auth) -> KeyOut:
    """Revoke a key; revoking twice is harmless."""
    return await auth.revoke_key(key_id=key_id)


@router.get("/api/me", response_model=Me)
async def me(principal: CurrentUser, auth: Auth) -> Me:
    """The calling key and its user, without secrets."""
    user = await auth.get_user(user_id=principal.user_id)
    if user is None:  # deleted between authentication and now
        raise HearthError(401, "invalid or revoked API key", code="invalid_api_key")
    if principal.key_id.startswith(WEB_KEY_PREFIX):
        return Me(user=UserOut.of(user), key=None)
    key = await auth.get_key(key_id=principal.key_id, user_id=principal.user_id)
    return Me(user=UserOut.of(user), key=key)


@router.put("/api/me/password", status_code=204, responses=errors(403))
async def change_password(body: PasswordChange, principal: CurrentUser, auth: Auth) -> Response:
    """Set your own web sign-in password (the current one is required when one is set)."""
    await auth.web.change_own_password(user_id=principal.user_id, current=body.current, new=body.password)
    return Response(status_code=204)
