"""A user's notification preferences (channels, email address, time zone, quiet hours) and their
browsers' push subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hearth.notify.channels import SmtpEmail
from hearth.notify.models import NotifyPreferences, PushSubscription
from hearth.notify.quiet import parse_hhmm, zone
from hearth.notify.schemas import (
    CHANNELS,
    NotifyPreferencesOut,
    NotifyPreferencesUpdate,
    QuietHours,
    SubscriptionCreate,
    SubscriptionOut,
)
from hearth.platform.db import Database
from hearth.platform.errors import HearthError, not_found

DEFAULT_CHANNELS = ["inapp"]


def _invalid(message: str, param: str) -> HearthError:
    return HearthError(422, message, param=param, code="invalid_value")


class Preferences:
    def __init__(self, db: Database, email: SmtpEmail, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.email = email
        self.clock = clock

    def _prefs_out(self, row: NotifyPreferences | None) -> NotifyPreferencesOut:
        if row is None:
            return NotifyPreferencesOut(channels=DEFAULT_CHANNELS, email_available=self.email.configured)  # type: ignore[arg-type]
        quiet = (
            QuietHours(start=row.quiet_start, end=row.quiet_end)
            if row.quiet_start and row.quiet_end
            else None
        )
        return NotifyPreferencesOut(
            channels=row.channels,  # type: ignore[arg-type]
            email=row.email,
            time_zone=row.time_zone,
            quiet_hours=quiet,
            email_available=self.email.configured,
        )

    async def get(self, *, user_id: str) -> NotifyPreferencesOut:
        async with self.db.sessions() as s:
            return self._prefs_out(await s.get(NotifyPreferences, user_id))

    async def set(self, *, user_id: str, changes: NotifyPreferencesUpdate) -> NotifyPreferencesOut:
        """Set the fields given; 422 (nothing stored) for an unknown time zone, a bad time, or email chosen
        without an address or on a server without SMTP."""
        fields = changes.model_fields_set
        if "time_zone" in fields:
            if changes.time_zone is None:
                raise _invalid("time_zone cannot be null; use UTC", "time_zone")
            try:
                zone(changes.time_zone)
            except ValueError as exc:
                raise _invalid(str(exc), "time_zone") from None
        if changes.quiet_hours is not None:
            for name in ("start", "end"):
                try:
                    parse_hhmm(getattr(changes.quiet_hours, name))
                except ValueError as exc:
                    raise _invalid(str(exc), f"quiet_hours.{name}") from None
        if "channels" in fields and changes.channels is None:
            raise _invalid("channels cannot be null; send [] for none", "channels")
        for attempt in range(2):
            try:
                return await self._store_preferences(user_id, changes)
            except IntegrityError:
                if attempt:  # a concurrent first write won twice in a row: give up loudly
                    raise
        raise AssertionError("unreachable")

    async def _store_preferences(
        self, user_id: str, changes: NotifyPreferencesUpdate
    ) -> NotifyPreferencesOut:
        fields = changes.model_fields_set
        async with self.db.transaction() as s:
            row = await s.get(NotifyPreferences, user_id, with_for_update=True)
            if row is None:
                row = NotifyPreferences(user_id=user_id, channels=list(DEFAULT_CHANNELS), time_zone="UTC")
                s.add(row)
            if changes.channels is not None:
                row.channels = [c for c in CHANNELS if c in changes.channels]  # known order, no repeats
            if "email" in fields:
                row.email = changes.email
            if changes.time_zone is not None:
                row.time_zone = changes.time_zone
            if "quiet_hours" in fields:
                quiet = changes.quiet_hours
                row.quiet_start, row.quiet_end = (quiet.start, quiet.end) if quiet else (None, None)
            if "email" in row.channels:
                if not self.email.configured:
                    raise _invalid("this server cannot send email (HEARTH_SMTP_HOST is not set)", "channels")
                if not row.email:
                    raise _invalid("choose an email address to get notifications by email", "email")
            row.updated_at = self.clock()
            await s.flush()
            return self._prefs_out(row)

    async def subscribe(self, *, user_id: str, body: SubscriptionCreate) -> SubscriptionOut:
        """Store a browser's push subscription (the same endpoint again updates its keys)."""
        async with self.db.transaction() as s:
            row = await s.scalar(
                select(PushSubscription).where(
                    PushSubscription.user_id == user_id, PushSubscription.endpoint == body.endpoint
                )
            )
            if row is None:
                row = PushSubscription(user_id=user_id, endpoint=body.endpoint, p256dh="", auth="")
                s.add(row)
            row.p256dh, row.auth = body.keys.p256dh, body.keys.auth
            await s.flush()
            return SubscriptionOut.model_validate(row)

    async def subscriptions(self, *, user_id: str) -> list[SubscriptionOut]:
        async with self.db.sessions() as s:
            rows = await s.scalars(
                select(PushSubscription)
                .where(PushSubscription.user_id == user_id)
                .order_by(PushSubscription.created_at)
            )
            return [SubscriptionOut.model_validate(r) for r in rows]

    async def unsubscribe(self, *, user_id: str, subscription_id: str) -> None:
        async with self.db.transaction() as s:
            gone = await s.execute(
                delete(PushSubscription).where(
                    PushSubscription.id == subscription_id, PushSubscription.user_id == user_id
                )
            )
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise not_found(f"no push subscription {subscription_id!r}", param="subscription_id")
