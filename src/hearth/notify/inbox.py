"""The in-app inbox: a user's notifications as items to read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select, update

from hearth.notify.channels import Message
from hearth.notify.models import InboxItem
from hearth.notify.schemas import Inbox, InboxItemOut
from hearth.platform.db import Database
from hearth.platform.errors import not_found


class InboxStore:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def add(self, user_id: str, message: Message) -> None:
        async with self.db.transaction() as s:
            s.add(
                InboxItem(
                    user_id=user_id,
                    notification_id=message.notification_id,
                    topic=message.topic,
                    title=message.title,
                    body=message.body,
                    url=message.url,
                    created_at=self.clock(),
                )
            )

    async def list(
        self, *, user_id: str, unread_only: bool = False, limit: int = 50, offset: int = 0
    ) -> Inbox:
        query = select(InboxItem).where(InboxItem.user_id == user_id)
        if unread_only:
            query = query.where(InboxItem.read_at.is_(None))
        async with self.db.sessions() as s:
            rows = (
                await s.scalars(
                    query.order_by(InboxItem.created_at.desc(), InboxItem.id).offset(offset).limit(limit)
                )
            ).all()
            unread = await s.scalar(
                select(func.count())
                .select_from(InboxItem)
                .where(InboxItem.user_id == user_id, InboxItem.read_at.is_(None))
            )
        return Inbox(data=[InboxItemOut.model_validate(r) for r in rows], unread=int(unread or 0))

    async def mark_read(self, *, user_id: str, item_id: str) -> InboxItemOut:
        """Mark one of the user's inbox items read (again: keeps the first time); 404 for another's."""
        async with self.db.transaction() as s:
            row = await s.scalar(
                select(InboxItem).where(InboxItem.id == item_id, InboxItem.user_id == user_id)
            )
            if row is None:
                raise not_found(f"no inbox item {item_id!r}", param="item_id")
            if row.read_at is None:
                row.read_at = self.clock()
            await s.flush()
            return InboxItemOut.model_validate(row)

    async def mark_all_read(self, *, user_id: str) -> int:
        async with self.db.transaction() as s:
            result = await s.execute(
                update(InboxItem)
                .where(InboxItem.user_id == user_id, InboxItem.read_at.is_(None))
                .values(read_at=self.clock())
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
