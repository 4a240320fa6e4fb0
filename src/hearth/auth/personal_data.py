"""The auth part of a user's personal data: the user row, API keys, web sessions and the password.

Exported without secrets: no key digests, no password hash (only whether one is set), no session token
digests or CSRF tokens. Erased last among the holders that key on the user (see platform.personal_data):
the other contexts may still look the user up by id while they erase."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from hearth.auth.models import ApiKey, User, WebSession
from hearth.auth.service import ADMIN_KEY_FILE, AuthService, hash_key
from hearth.platform.db import Database
from hearth.platform.errors import HearthError
from hearth.platform.personal_data import Rows


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None and hasattr(value, "isoformat") else value


class AuthPersonalData:
    context = "auth"

    def __init__(self, auth: AuthService, *, data_dir: Path) -> None:
        self.auth = auth
        self.db = auth.db
        self.data_dir = data_dir

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                return {"user": [], "api_keys": [], "web_sessions": []}
            keys = await session.scalars(
                select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)
            )
            webs = await session.scalars(
                select(WebSession).where(WebSession.user_id == user_id).order_by(WebSession.created_at)
            )
            return {
                "user": [
                    {
                        "id": user.id,
                        "username": user.username,
                        "role": user.role,
                        "premium": user.premium,
                        "disabled": user.disabled,
                        "has_password": user.password_hash is not None,
                        "created_at": _iso(user.created_at),
                    }
                ],
                "api_keys": [
                    {
                        "id": k.id,
                        "name": k.name,
                        "prefix": k.prefix,
                        "priority": k.priority,
                        "rpm_limit": k.rpm_limit,
                        "tpm_limit": k.tpm_limit,
                        "created_at": _iso(k.created_at),
                        "revoked_at": _iso(k.revoked_at),
                        "last_used_at": _iso(k.last_used_at),
                    }
                    for k in keys
                ],
                "web_sessions": [
                    {
                        "signed_in_with_key": w.key_id,
                        "created_at": _iso(w.created_at),
                        "expires_at": _iso(w.expires_at),
                    }
                    for w in webs
                ],
            }

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as session:
            digests = set(
                (await session.scalars(select(ApiKey.key_hash).where(ApiKey.user_id == user_id))).all()
            )
            # Children first: SQLite enforces the foreign keys, but nothing here relies on ON DELETE CASCADE.
            await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
            await session.execute(delete(ApiKey).where(ApiKey.user_id == user_id))
            await session.execute(delete(User).where(User.id == user_id))
        # Cached principals of the user's keys would otherwise authenticate for a few more seconds.
        self.auth._invalidate(lambda p: p is None or p.user_id == user_id)
        self._forget_first_admin_key(digests)

    def _forget_first_admin_key(self, digests: set[str]) -> None:
        """Remove data_dir/admin-key.txt when it holds one of the erased user's keys (the first admin's)."""
        path = self.data_dir / ADMIN_KEY_FILE
        try:
            token = path.read_text().strip()
        except OSError:
            return
        if any(hmac.compare_digest(hash_key(token), d) for d in digests):
            path.unlink(missing_ok=True)


async def check_erasable(db: Database, user_id: str) -> None:
    """409 when the user is the last enabled admin: erasing them would leave no one to administer
    Hearth (the same rule that keeps the last admin key from being revoked)."""
    async with db.sessions() as session:
        user = await session.get(User, user_id)
        if user is None or user.role != "admin" or user.disabled:
            return
        others = await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.disabled.is_(False), User.id != user_id)
        )
    if not others:
        raise HearthError(
            409,
            "this is the last enabled admin: make another user admin before erasing this one",
            param="user",
            code="last_admin",
        )
