"""Request and response bodies of the notify routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.platform.kit.schemas import ORMModel
from hearth.platform.kit.time import UtcTimestamp

Channel = Literal["inapp", "email", "webpush"]
CHANNELS: tuple[str, ...] = ("inapp", "email", "webpush")


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(description="HH:MM in the user's time zone", pattern=r"^\d{2}:\d{2}$")
    end: str = Field(description="HH:MM; before start: the window crosses midnight", pattern=r"^\d{2}:\d{2}$")


class NotifyPreferencesOut(BaseModel):
    channels: list[Channel] = Field(description="Where notifications go; inapp always works")
    email: str | None = None
    time_zone: str = "UTC"
    quiet_hours: QuietHours | None = None
    email_available: bool = Field(description="Whether this server can send email (HEARTH_SMTP_HOST)")


class NotifyPreferencesUpdate(BaseModel):
    """The fields present are set (null clears email or quiet_hours); the others keep their values."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] | None = Field(None, max_length=3)
    email: str | None = Field(None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    time_zone: str | None = Field(None, max_length=64)
    quiet_hours: QuietHours | None = None


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(min_length=1, max_length=128)
    auth: str = Field(min_length=1, max_length=64)


class SubscriptionCreate(BaseModel):
    """A browser's PushSubscription.toJSON()."""

    endpoint: str = Field(min_length=8, max_length=1024, pattern=r"^https?://")
    keys: SubscriptionKeys


class SubscriptionOut(ORMModel):
    id: str
    endpoint: str
    created_at: UtcTimestamp


class VapidKey(BaseModel):
    public_key: str = Field(description="applicationServerKey for pushManager.subscribe (base64url)")


class AttemptOut(ORMModel):
    attempt: int
    status: str
    error: str | None
    at: UtcTimestamp


class DeliveryOut(ORMModel):
    id: str
    notification_id: str
    channel: str
    status: str = Field(description="pending | sending | sent | deferred (quiet hours) | retrying | failed")
    attempts: int
    next_attempt_at: UtcTimestamp | None
    last_error: str | None
    sent_at: UtcTimestamp | None
    created_at: UtcTimestamp
    log: list[AttemptOut] = Field(default_factory=list, description="Every attempt, oldest first")


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


class InboxItemOut(ORMModel):
    id: str
    notification_id: str
    topic: str
    title: str
    body: str
    url: str | None
    created_at: UtcTimestamp
    read_at: UtcTimestamp | None


class Inbox(BaseModel):
    data: list[InboxItemOut]
    unread: int


class TestNotification(BaseModel):
    """A notification to yourself, to check your channels."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("Test notification", min_length=1, max_length=200)
    body: str = Field("Hearth can reach you here.", min_length=1, max_length=4000)
    url: str | None = Field(None, max_length=1024)
    dedupe_key: str | None = Field(None, min_length=1, max_length=200)


class NotifyResult(BaseModel):
    deduplicated: bool = Field(description="True when the same dedupe_key was sent within the window")
    deliveries: list[DeliveryOut]
