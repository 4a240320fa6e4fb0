"""auth.web_sessions on SQLite and PostgreSQL: password and key sign-in, what ends a session, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from hearth.auth.models import WebSession
from hearth.auth.service import AuthService
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError

PASSWORD = "a long password"


@pytest.fixture
async def auth(database: Database) -> AuthService:
    return AuthService(database, cache_seconds=0)


async def test_password_sign_in(auth: AuthService) -> None:
    user = await auth.create_user(username="ann", premium=True)
    assert await auth.web.sign_in_password(username="ann", password=PASSWORD) is None  # no password yet
    await auth.web.set_password(username="ann", password=PASSWORD)
    assert await auth.web.sign_in_password(username="ann", password="wrong password") is None
    assert await auth.web.sign_in_password(username="nobody", password=PASSWORD) is None
    signed = await auth.web.sign_in_password(username="ann", password=PASSWORD)
    assert signed is not None and signed.token != signed.csrf_token
    active = await auth.web.resolve(signed.token)
    assert active is not None and active.csrf_token == signed.csrf_token and active.has_password
    assert active.principal.user_id == user.id and active.principal.key_id == f"web:{user.id}"
    assert active.principal.priority == "premium"
    assert await auth.web.resolve(signed.token + "x") is None
    with pytest.raises(HearthError) as short:
        await auth.web.set_password(username="ann", password="short")
    assert short.value.status == 422
    with pytest.raises(HearthError) as ghost:
        await auth.web.set_password(username="ghost", password=PASSWORD)
    assert ghost.value.status == 404


async def test_what_ends_a_session(auth: AuthService, database: Database) -> None:
    user = await auth.create_user(username="ben")
    await auth.web.set_password(user_id=user.id, password=PASSWORD)
    by_password = await auth.web.sign_in_password(username="ben", password=PASSWORD)
    _key, token = await auth.create_key(username="ben")
    by_key = await auth.web.sign_in_key(key=token)
    assert by_password is not None and by_key is not None
    key_session = await auth.web.resolve(by_key.token)
    assert key_session is not None and key_session.principal.key_id == _key.id

    # A password reset ends password sessions only; the key's session goes on.
    await auth.web.set_password(user_id=user.id, password="another password")
    assert await auth.web.resolve(by_password.token) is None
    assert await auth.web.resolve(by_key.token) is not None

    # Disabling the user ends every session; enabling brings the unexpired ones back.
    await auth.set_user_disabled(user_id=user.id, disabled=True)
    assert await auth.web.resolve(by_key.token) is None
    await auth.set_user_disabled(user_id=user.id, disabled=False)
    assert await auth.web.resolve(by_key.token) is not None

    # Revoking the key ends its session.
    await auth.revoke_key(key_id=_key.id)
    assert await auth.web.resolve(by_key.token) is None
    assert await auth.web.sign_in_key(key=token) is None

    # Signing out deletes the row.
    again = await auth.web.sign_in_password(username="ben", password="another password")
    assert again is not None
    await auth.web.sign_out(again.token)
    assert await auth.web.resolve(again.token) is None


async def test_expired_sessions_refuse_and_are_swept(auth: AuthService, database: Database) -> None:
    await auth.create_user(username="cy")
    await auth.web.set_password(username="cy", password=PASSWORD)
    old = await auth.web.sign_in_password(username="cy", password=PASSWORD)
    fresh = await auth.web.sign_in_password(username="cy", password=PASSWORD)
    assert old is not None and fresh is not None
    async with database.transaction() as session:
        await session.execute(
            update(WebSession)
            .where(WebSession.expires_at == old.expires_at)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await auth.web.resolve(old.token) is None
    assert await auth.web.resolve(fresh.token) is not None
    assert await auth.web.sweep(utcnow()) == 1
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(WebSession)) == 1


async def test_own_password_change_needs_the_current_one(auth: AuthService) -> None:
    user = await auth.create_user(username="di")
    await auth.web.change_own_password(user_id=user.id, current=None, new=PASSWORD)  # none set yet
    with pytest.raises(HearthError) as wrong:
        await auth.web.change_own_password(user_id=user.id, current="not it", new="something else")
    assert wrong.value.status == 403
    await auth.web.change_own_password(user_id=user.id, current=PASSWORD, new="something else")
    assert await auth.web.sign_in_password(username="di", password="something else") is not None
