"""The notify part of a user's personal data: preferences (with the email address), push subscriptions
(their endpoints; the browser's keys are not exported), notifications, deliveries with their attempts,
and the inbox."""

from __future__ import annotations

from sqlalchemy import delete, select

from hearth.notify.models import (
    Delivery,
    DeliveryAttempt,
    InboxItem,
    Notification,
    NotifyPreferences,
    PushSubscription,
)
from hearth.platform.db import Database
from hearth.platform.personal_data import Rows, row_dict


class NotifyPersonalData:
    context = "notify"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def export_user(self, user_id: str) -> Rows:
        async with self.db.sessions() as s:
            prefs = await s.get(NotifyPreferences, user_id)
            subs = (
                await s.scalars(select(PushSubscription).where(PushSubscription.user_id == user_id))
            ).all()
            notes = (await s.scalars(select(Notification).where(Notification.user_id == user_id))).all()
            deliveries = (await s.scalars(select(Delivery).where(Delivery.user_id == user_id))).all()
            attempts = (
                await s.scalars(
                    select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
                )
            ).all()
            inbox = (await s.scalars(select(InboxItem).where(InboxItem.user_id == user_id))).all()
        return {
            "preferences": [row_dict(prefs)] if prefs is not None else [],
            "push_subscriptions": [row_dict(x, exclude=("p256dh", "auth")) for x in subs],
            "notifications": [row_dict(x) for x in notes],
            "deliveries": [row_dict(x) for x in deliveries],
            "attempts": [row_dict(x, exclude=("id",)) for x in attempts],
            "inbox": [row_dict(x) for x in inbox],
        }

    async def erase_user(self, user_id: str) -> None:
        async with self.db.transaction() as s:
            deliveries = select(Delivery.id).where(Delivery.user_id == user_id)
            notes = select(Notification.id).where(Notification.user_id == user_id)
            await s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(deliveries)))
            await s.execute(delete(Delivery).where(Delivery.user_id == user_id))
            await s.execute(delete(InboxItem).where(InboxItem.user_id == user_id))
            await s.execute(delete(Delivery).where(Delivery.notification_id.in_(notes)))
            await s.execute(delete(Notification).where(Notification.user_id == user_id))
            await s.execute(delete(PushSubscription).where(PushSubscription.user_id == user_id))
            await s.execute(delete(NotifyPreferences).where(NotifyPreferences.user_id == user_id))
