"""The audit log's part of a user's personal data: the admin actions the user did or was the subject of.

Decision (docs/privacy.md): audit entries are kept, pseudonymised, not deleted. The log is the record of
what admins did (who was created, which key was revoked, which model changed); deleting entries because
one of the people in them left would let an erasure rewrite that history. So every value that names the
user (their username as actor or target, their user id, the ids of their keys as targets) is replaced by
the erasure's pseudonym, one random name per erasure: the entries still show that one person did these
things, and nothing links that person back to the erased user."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, or_, select

from hearth.audit.models import AuditEntry
from hearth.auth.ports import UserDirectory
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, pseudonym, row_dict

_KEY_ACTIONS = ("key.created", "key.revoked")  # their target is a key id; details.user_id its owner


class AuditPersonalData:
    context = "audit"

    def __init__(self, db: Database, users: UserDirectory) -> None:
        self.db = db
        self.users = users

    async def _entries(self, user_id: str) -> tuple[list[AuditEntry], set[str]]:
        """The entries naming the user, and the values that name them."""
        names = await self.users.usernames([user_id])
        values = {user_id, *names.values()}
        # The JSON column is matched as text (portable across SQLite and PostgreSQL), then checked exactly.
        details = cast(AuditEntry.details, String)
        query = select(AuditEntry).where(
            or_(
                AuditEntry.actor.in_(values),
                AuditEntry.target.in_(values),
                *(details.contains(v) for v in values),
            )
        )
        async with self.db.sessions() as s:
            rows = [r for r in (await s.scalars(query.order_by(AuditEntry.id))).all() if _names(r, values)]
        return rows, values

    async def export_user(self, user_id: str) -> Rows:
        rows, _ = await self._entries(user_id)
        return {"audit_log": [row_dict(r, exclude=("id",)) for r in rows]}

    async def erase_user(self, user_id: str) -> None:
        rows, values = await self._entries(user_id)
        if not rows:
            return
        alias = pseudonym()
        async with self.db.transaction() as s:
            for row in rows:
                entry = await s.get(AuditEntry, row.id)
                if entry is None:
                    continue
                if entry.action in _KEY_ACTIONS and entry.details.get("user_id") == user_id:
                    entry.target = alias  # the key was the user's: its id would link the entry back
                if entry.action.startswith("collection.") and entry.actor in values:
                    entry.target = alias  # the user shared their own collection: its id, likewise
                entry.actor = alias if entry.actor in values else entry.actor
                entry.target = alias if entry.target in values else entry.target
                entry.details = _replace(entry.details, values, alias)


def _names(row: AuditEntry, values: set[str]) -> bool:
    return row.actor in values or row.target in values or _mentions(row.details, values)


def _mentions(value: Any, values: set[str]) -> bool:
    if isinstance(value, dict):
        return any(_mentions(v, values) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, values) for v in value)
    return isinstance(value, str) and value in values


def _replace(value: Any, values: set[str], alias: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, values, alias) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, values, alias) for v in value]
    return alias if isinstance(value, str) and value in values else value
