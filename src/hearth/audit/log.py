"""The audit log: writes one entry per admin-action event, lists them newest first."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.audit.actions import ACTIONS, action_of, user_ids
from hearth.audit.models import AuditEntry
from hearth.auth.ports import UserDirectory
from hearth.events.schemas import Event
from hearth.platform.db import Database
from hearth.platform.errors import bad_request

CONSUMER = "audit-log"  # the bus consumer name: keys its idempotency ledger and JetStream durable


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    has_more: bool


class AuditLog:
    def __init__(self, *, db: Database, users: UserDirectory) -> None:
        self.db = db
        self.users = users

    async def record(self, event: Event, session: AsyncSession) -> None:
        """Write the event's entry in the bus's transaction (with the consumed record)."""
        ids = user_ids(event)
        names = await self.users.usernames(ids) if ids else {}
        entry = action_of(event, names)
        session.add(
            AuditEntry(
                event_id=event.id,
                occurred_at=event.occurred_at,
                action=entry.action,
                actor=entry.actor,
                target=entry.target[:256],
                details=entry.details,
            )
        )

    async def entries(
        self, *, action: str | None = None, actor: str | None = None, limit: int = 50, offset: int = 0
    ) -> AuditPage:
        """Entries newest first, optionally of one action and one actor; 400 for an unknown action."""
        if action is not None and action not in ACTIONS:
            raise bad_request(
                f"unknown action {action!r}; one of: {', '.join(ACTIONS)}",
                param="action",
                code="invalid_filter",
            )
        stmt = select(AuditEntry).order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc())
        if action is not None:
            stmt = stmt.where(AuditEntry.action == action)
        if actor is not None:
            stmt = stmt.where(AuditEntry.actor == actor)
        async with self.db.sessions() as session:
            rows = list(await session.scalars(stmt.offset(offset).limit(limit + 1)))
        return AuditPage(entries=rows[:limit], has_more=len(rows) > limit)
