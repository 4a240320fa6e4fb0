"""The notify context's service: a notification becomes one delivery per channel and target, each sent
now, deferred past the user's quiet hours, or retried with backoff; every attempt is logged. Preferences
and subscriptions (preferences.py), the inbox (inbox.py) and the delivery log with retention (log.py) are
its parts; this module creates and sends deliveries.

- Dedupe: a user's notification with the same `dedupe_key` as one created within
  `notify_dedupe_seconds` is not created again (`notify` says `deduplicated`).
- Quiet hours (the user's time zone): email and push deliveries are `deferred` until the window ends, not
  dropped; the in-app inbox is silent, so it gets the notification at once.
- Retries: a failed attempt sets `retrying` and `next_attempt_at` = now + `notify_retry_seconds` × 2^(n-1);
  after `notify_max_attempts`, or an error retrying cannot fix (a push subscription gone: it is removed),
  the delivery is `failed`.
- Who sends a due delivery: `run_due` (the worker calls it every `notify_poll_seconds`) claims it with
  one conditional UPDATE (status due → sending), so two server processes never send it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.notify.channels import ChannelError, Message, Push, SmtpEmail, WebPush
from hearth.notify.events import NotificationDelivered, NotificationFailed
from hearth.notify.inbox import InboxStore
from hearth.notify.log import WAITING, DeliveryLog
from hearth.notify.models import (
    Delivery,
    DeliveryAttempt,
    Notification,
    NotifyPreferences,
    PushSubscription,
)
from hearth.notify.preferences import DEFAULT_CHANNELS, Preferences
from hearth.notify.quiet import quiet_until
from hearth.notify.schemas import (
    NotifyResult,
)
from hearth.platform.db import Database, utcnow

log = logging.getLogger("hearth.notify")

LOUD = ("email", "webpush")  # the channels quiet hours hold back
# `notify` sends its new deliveries itself; the worker takes a "pending" one only when that call died
# (a crash between creating and sending), and a "sending" one whose process died mid-send.
PENDING_GRACE = timedelta(minutes=1)
CLAIM_STALE = timedelta(minutes=10)


def _due(now: datetime) -> Any:
    return or_(
        and_(Delivery.status.in_(WAITING), Delivery.next_attempt_at <= now),
        and_(Delivery.status == "pending", Delivery.updated_at < now - PENDING_GRACE),
        and_(Delivery.status == "sending", Delivery.updated_at < now - CLAIM_STALE),
    )


class NotifyService:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        settings: Settings,
        email: SmtpEmail,
        push: WebPush,
        vapid_public_key: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.vapid_public_key = vapid_public_key  # what browsers subscribe with
        self.bus = bus
        self.email = email
        self.push = push
        self.clock = clock
        self.dedupe = timedelta(seconds=settings.notify_dedupe_seconds)
        self.retry = timedelta(seconds=settings.notify_retry_seconds)
        self.max_attempts = settings.notify_max_attempts
        self.poll_seconds = settings.notify_poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        now = lambda: self.clock()  # noqa: E731  (the parts read the service's clock, which tests move)
        self.prefs = Preferences(db, email, now)
        self.inbox_store = InboxStore(db, now)
        self.log = DeliveryLog(db)
        # The routes' and other callers' methods are the parts' own.
        self.preferences = self.prefs.get
        self.set_preferences = self.prefs.set
        self.subscribe = self.prefs.subscribe
        self.subscriptions = self.prefs.subscriptions
        self.unsubscribe = self.prefs.unsubscribe
        self.inbox = self.inbox_store.list
        self.mark_read = self.inbox_store.mark_read
        self.mark_all_read = self.inbox_store.mark_all_read
        self.deliveries = self.log.list
        self.sweep = self.log.sweep

    # -- notify -----------------------------------------------------------------------------------------

    async def notify(
        self,
        user_id: str,
        *,
        topic: str,
        dedupe_key: str,
        title: str,
        body: str,
        url: str | None = None,
        channels: Collection[str] | None = None,
    ) -> NotifyResult:
        """Create the notification and its deliveries, and send those that are due now."""
        now = self.clock()
        async with self.db.transaction() as s:
            prefs = await s.get(NotifyPreferences, user_id)
            # Two notifies of one key at the same instant can both pass this check (no lock): callers
            # that dedupe (the tips scheduler) run one at a time per user.
            recent = await s.scalar(
                select(Notification.id)
                .where(
                    Notification.user_id == user_id,
                    Notification.dedupe_key == dedupe_key,
                    Notification.created_at > now - self.dedupe,
                )
                .limit(1)
            )
            if recent is not None:
                return NotifyResult(deduplicated=True, deliveries=[])
            note = Notification(
                user_id=user_id,
                topic=topic,
                dedupe_key=dedupe_key,
                title=title,
                body=body,
                url=url,
                created_at=now,
            )
            s.add(note)
            await s.flush()
            allowed = prefs.channels if prefs is not None else DEFAULT_CHANNELS
            channels = [c for c in allowed if channels is None or c in channels]
            quiet = (
                quiet_until(now, time_zone=prefs.time_zone, start=prefs.quiet_start, end=prefs.quiet_end)
                if prefs is not None
                else None
            )
            targets: list[tuple[str, str]] = []
            if "inapp" in channels:
                targets.append(("inapp", "inbox"))
            if "email" in channels and prefs is not None and prefs.email:
                targets.append(("email", prefs.email))
            if "webpush" in channels:
                subs = await s.scalars(select(PushSubscription.id).where(PushSubscription.user_id == user_id))
                targets += [("webpush", sub) for sub in subs]
            deliveries = []
            for channel, target in targets:
                deferred = quiet is not None and channel in LOUD
                deliveries.append(
                    Delivery(
                        notification_id=note.id,
                        user_id=user_id,
                        channel=channel,
                        target=target,
                        status="deferred" if deferred else "pending",
                        attempts=0,
                        next_attempt_at=quiet if deferred else now,
                        created_at=now,
                        updated_at=now,
                    )
                )
            s.add_all(deliveries)
            await s.flush()
            ids = [d.id for d in deliveries]
        for delivery_id in ids:
            await self._attempt(delivery_id, new=True)
        return NotifyResult(deduplicated=False, deliveries=await self.log.of(ids))

    async def run_due(self) -> int:
        """Attempt every delivery that is due now (quiet hours over, retry time reached); how many."""
        now = self.clock()
        async with self.db.sessions() as s:
            ids = (
                await s.scalars(
                    select(Delivery.id).where(_due(now)).order_by(Delivery.next_attempt_at).limit(200)
                )
            ).all()
        attempted = 0
        for delivery_id in ids:
            attempted += await self._attempt(delivery_id)
        return attempted

    async def _claim(self, delivery_id: str, *, new: bool) -> Delivery | None:
        """Move a due delivery (`new`: one `notify` just created) to "sending"; None when another process
        (or call) has it, or it is not due."""
        now = self.clock()
        due = Delivery.status == "pending" if new else _due(now)
        async with self.db.transaction() as s:
            claimed = await s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, due)
                .values(status="sending", attempts=Delivery.attempts + 1, updated_at=now)
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return None
            return await s.get(Delivery, delivery_id)

    async def _attempt(self, delivery_id: str, *, new: bool = False) -> int:
        delivery = await self._claim(delivery_id, new=new)
        if delivery is None:
            return 0
        error: ChannelError | None = None
        gone_subscription = False
        try:
            async with self.db.sessions() as s:
                note = await s.get(Notification, delivery.notification_id)
                if note is None:  # erased meanwhile
                    return 0
                message = Message(note.id, note.topic, note.title, note.body, note.url)
                push = None
                if delivery.channel == "webpush":
                    sub = await s.get(PushSubscription, delivery.target)
                    if sub is None:
                        raise ChannelError("the push subscription was removed", permanent=True)
                    push = Push(sub.endpoint, sub.p256dh, sub.auth)
            if delivery.channel == "inapp":
                await self.inbox_store.add(delivery.user_id, message)
            elif delivery.channel == "email":
                await self.email.send(delivery.target, message)
            elif push is not None:
                await self.push.send(push, message)
        except ChannelError as exc:
            error = exc
            gone_subscription = exc.permanent and delivery.channel == "webpush"
        except Exception as exc:  # a channel's own bug must not leave the delivery stuck in "sending"
            log.exception("notification channel failed unexpectedly", extra={"delivery_id": delivery.id})
            error = ChannelError(f"{type(exc).__name__}: {exc}")
        await self._settle(delivery, error, remove_subscription=gone_subscription)
        return 1

    async def _settle(
        self, delivery: Delivery, error: ChannelError | None, *, remove_subscription: bool
    ) -> None:
        """Record the attempt and the delivery's new status (and its event when final), in one transaction."""
        now = self.clock()
        attempt = delivery.attempts
        async with self.db.transaction() as s:
            s.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    attempt=attempt,
                    status="sent" if error is None else "failed",
                    error=None if error is None else str(error)[:2000],
                    at=now,
                )
            )
            values: dict[str, object] = {"updated_at": now}
            event = None
            if error is None:
                values |= {"status": "sent", "sent_at": now, "next_attempt_at": None, "last_error": None}
                event = NotificationDelivered(
                    notification_id=delivery.notification_id,
                    delivery_id=delivery.id,
                    user_id=delivery.user_id,
                    channel=delivery.channel,
                    attempts=attempt,
                )
            elif error.permanent or attempt >= self.max_attempts:
                values |= {"status": "failed", "next_attempt_at": None, "last_error": str(error)[:2000]}
                event = NotificationFailed(
                    notification_id=delivery.notification_id,
                    delivery_id=delivery.id,
                    user_id=delivery.user_id,
                    channel=delivery.channel,
                    attempts=attempt,
                    error=str(error)[:500],
                )
            else:
                wait = self.retry * 2 ** (attempt - 1)
                values |= {
                    "status": "retrying",
                    "next_attempt_at": now + wait,
                    "last_error": str(error)[:2000],
                }
            await s.execute(update(Delivery).where(Delivery.id == delivery.id).values(**values))
            if remove_subscription:
                await s.execute(delete(PushSubscription).where(PushSubscription.id == delivery.target))
            if event is not None:
                await self.bus.publish(event, session=s)
        if error is not None:
            log.warning(
                "notification delivery failed",
                extra={
                    "delivery_id": delivery.id,
                    "channel": delivery.channel,
                    "attempt": attempt,
                    "error": str(error),
                },
            )

    # -- the worker -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notify-worker")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.push.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:
                log.exception("notify worker pass failed; retrying next pass")
