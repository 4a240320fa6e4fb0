"""The delivery log (each delivery with every attempt) and the retention of old notifications."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.notify.models import Delivery, DeliveryAttempt, InboxItem, Notification
from hearth.notify.schemas import AttemptOut, DeliveryOut
from hearth.platform.db import Database
from hearth.platform.kit.repository import in_chunks

WAITING = ("deferred", "retrying")  # due at next_attempt_at


class DeliveryLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def of(self, ids: list[str]) -> list[DeliveryOut]:
        if not ids:
            return []
        async with self.db.sessions() as s:
            rows = (await s.scalars(select(Delivery).where(Delivery.id.in_(ids)))).all()
            return await self._with_log(s, sorted(rows, key=lambda d: ids.index(d.id)))

    @staticmethod
    async def _with_log(s: AsyncSession, rows: list[Delivery]) -> list[DeliveryOut]:
        attempts = (
            await s.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id.in_([r.id for r in rows]))
                .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.attempt)
            )
        ).all()
        by_delivery: dict[str, list[AttemptOut]] = {}
        for a in attempts:
            by_delivery.setdefault(a.delivery_id, []).append(AttemptOut.model_validate(a))
        return [
            DeliveryOut.model_validate(r).model_copy(update={"log": by_delivery.get(r.id, [])}) for r in rows
        ]

    async def list(
        self, *, user_id: str, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DeliveryOut]:
        """The user's deliveries, newest first, each with its attempts."""
        query = select(Delivery).where(Delivery.user_id == user_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        async with self.db.sessions() as s:
            rows = list(
                (
                    await s.scalars(
                        query.order_by(Delivery.created_at.desc(), Delivery.id).offset(offset).limit(limit)
                    )
                ).all()
            )
            return await self._with_log(s, rows) if rows else []

    async def sweep(self, cutoff: datetime) -> int:
        """Delete notifications created before `cutoff` with their deliveries, log and inbox items, except
        those with a delivery still waiting (deferred or retrying): a retention rule."""
        async with self.db.transaction() as s:
            waiting = select(Delivery.notification_id).where(
                Delivery.status.in_((*WAITING, "pending", "sending"))
            )
            old = select(Notification.id).where(
                Notification.created_at < cutoff, Notification.id.not_in(waiting)
            )
            ids = list((await s.scalars(old)).all())
            for chunk in in_chunks(ids):
                deliveries = select(Delivery.id).where(Delivery.notification_id.in_(chunk))
                await s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries)))
                await s.execute(delete(Delivery).where(Delivery.notification_id.in_(chunk)))
                await s.execute(delete(InboxItem).where(InboxItem.notification_id.in_(chunk)))
                await s.execute(delete(Notification).where(Notification.id.in_(chunk)))
            return len(ids)
