"""The notify context's events: a delivery's final outcome."""

from __future__ import annotations

from typing import ClassVar

from hearth.events.schemas import Event


class _NotifyEvent(Event):
    context: ClassVar[str] = "notify"

    notification_id: str
    delivery_id: str
    user_id: str
    channel: str
    attempts: int


class NotificationDelivered(_NotifyEvent):
    pass


class NotificationFailed(_NotifyEvent):
    """Given up: the last attempt's error, after `notify_max_attempts` or an error retrying cannot fix."""

    error: str
