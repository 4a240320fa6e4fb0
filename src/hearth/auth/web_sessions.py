"""Browser sessions: sign in with a password or an API key, one server-side row per signed-in browser.

The browser holds a random token in an HttpOnly cookie; the database holds its SHA-256 digest, the user, the
key it signed in with (if any) and a CSRF token that every state-changing request must echo in a header
(auth.deps). Signing out deletes the row, so the cookie stops working at once in every process. A session
signed in with a key acts as that key (its priority, its rate limits, its usage) and ends when the key is
revoked; a password session gets the user's default priority and rate limits under the pseudo key id
`web:<user id>`."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from hearth.auth.events import PasswordChanged, PasswordReset
from hearth.auth.models import ApiKey, User, WebSession
from hearth.auth.passwords import hash_password, needs_rehash, verify_password
from hearth.auth.principal import Principal
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError
from hearth.platform.kit.repository import or_404

if TYPE_CHECKING:
    from hearth.auth.service import AuthService

SESSION_LIFETIME = timedelta(days=7)
WEB_KEY_PREFIX = "web:"  # the Principal.key_id of a password session: rate limits and usage per user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str  # goes into the cookie, nowhere else
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ActiveSession:
    principal: Principal
    csrf_token: str
    has_password: bool


class WebSessions:
    def __init__(self, db: Database, auth: AuthService) -> None:
        self.db = db
        self.auth = auth

    async def sign_in_password(self, *, username: str, password: str) -> SignedIn | None:
        """A new session for a user whose password matches; None for any failure (which one is not said)."""
        async with self.db.sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None else None
        # argon2 takes ~50-100 ms of CPU: off the event loop.
        ok = await asyncio.to_thread(verify_password, stored, password)
        if not ok or user is None or user.disabled:
            return None
        if stored is not None and needs_rehash(stored):
            await self._store_hash(user.id, await asyncio.to_thread(hash_password, password))
        return await self._open(user_id=user.id, key_id=None)

    async def sign_in_key(self, *, key: str) -> SignedIn | None:
        """A new session acting as an active API key; None when the key is unknown, revoked or disabled."""
        principal = await self.auth.authenticate(key.strip())
        if principal is None:
            return None
        return await self._open(user_id=principal.user_id, key_id=principal.key_id)

    async def resolve(self, token: str) -> ActiveSession | None:
        """The session of a cookie's token, or None when it is unknown, expired, or its user or key no
        longer works."""
        if not token or len(token) > 128:
            return None
        query = (
            select(WebSession, User, ApiKey)
            .join(User, User.id == WebSession.user_id)
            .outerjoin(ApiKey, ApiKey.id == WebSession.key_id)
            .where(WebSession.id == _digest(token))
        )
        async with self.db.sessions() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        web, user, key = row
        if web.expires_at <= utcnow() or user.disabled:
            return None
        if web.key_id is not None:
            if key is None or key.revoked_at is not None:
                return None
            principal = Principal.of_key(user, key)
        else:
            principal = Principal(
                user_id=user.id,
                username=user.username,
                role=user.role,
                key_id=WEB_KEY_PREFIX + user.id,
                priority="premium" if user.premium else "standard",
                rpm_limit=None,
                tpm_limit=None,
            )
        return ActiveSession(principal, web.csrf_token, user.password_hash is not None)

    async def sign_out(self, token: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(delete(WebSession).where(WebSession.id == _digest(token)))

    async def set_password(
        self,
        *,
        user_id: str | None = None,
        username: str | None = None,
        password: str,
        end_sessions: bool = True,
        own: bool = False,
    ) -> User:
        """Set (or replace) a user's password and end their password sessions; 404 for no user. Publishes
        `PasswordChanged` when it is the user's own change (`own`), else `PasswordReset` naming the actor."""
        hashed = await asyncio.to_thread(hash_password, password)
        async with self.db.transaction() as session:
            match = User.id == user_id if user_id is not None else User.username == username
            query = select(User).where(match)
            user = or_404(
                await session.scalar(query),
                f"no user {username or user_id!r}",
                param="user",
                code="user_not_found",
            )
            user.password_hash = hashed
            if own:
                event: PasswordChanged | PasswordReset = PasswordChanged(
                    user_id=user.id, username=user.username
                )
            else:
                event = PasswordReset(user_id=user.id, username=user.username, actor=self.auth.acting_as())
            await self.auth.publish(session, event)
            if end_sessions:  # a reset locks out whoever knew the old password
                await session.execute(
                    delete(WebSession).where(WebSession.user_id == user.id, WebSession.key_id.is_(None))
                )
            return user

    async def change_own_password(self, *, user_id: str, current: str | None, new: str) -> None:
        """A signed-in user's own change: the current password is required when one is set."""
        async with self.db.sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise HearthError(404, "no such user", code="user_not_found")
        if user.password_hash is not None and not await asyncio.to_thread(
            verify_password, user.password_hash, current or ""
        ):
            raise HearthError(403, "the current password is wrong", param="current", code="wrong_password")
        await self.set_password(user_id=user_id, password=new, end_sessions=False, own=True)

    async def sweep(self, cutoff: datetime) -> int:
        """Retention: delete sessions that expired before `cutoff`."""
        async with self.db.transaction() as session:
            result = await session.execute(delete(WebSession).where(WebSession.expires_at < cutoff))
            return result.rowcount or 0

    async def _open(self, *, user_id: str, key_id: str | None) -> SignedIn:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        async with self.db.transaction() as session:
            session.add(
                WebSession(
                    id=_digest(token),
                    user_id=user_id,
                    key_id=key_id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + SESSION_LIFETIME,
                )
            )
        return SignedIn(token, csrf, now + SESSION_LIFETIME)

    async def _store_hash(self, user_id: str, hashed: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(update(User).where(User.id == user_id).values(password_hash=hashed))
