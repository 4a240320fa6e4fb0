"""The notify context's service: a notification becomes one delivery per channel and target, each sent
now, deferred past the user's quiet hours, or retried with backoff; every attempt is logged.

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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.config import Settings
from hearth.events.bus import EventBus
from hearth.notify.channels import ChannelError, Message, Push, SmtpEmail, WebPush
from hearth.notify.events import NotificationDelivered, NotificationFailed
from hearth.notify.models import (
    Delivery,
    DeliveryAttempt,
    InboxItem,
    Notification,
    NotifyPreferences,
    PushSubscription,
)
from hearth.notify.quiet import parse_hhmm, quiet_until, zone
from hearth.notify.schemas import (
    CHANNELS,
    AttemptOut,
    DeliveryOut,
    Inbox,
    InboxItemOut,
    NotifyPreferencesOut,
    NotifyPreferencesUpdate,
    NotifyResult,
    QuietHours,
    SubscriptionCreate,
    SubscriptionOut,
)
from hearth.platform.db import Database, utcnow
from hearth.platform.errors import HearthError, not_found
from hearth.platform.kit.repository import in_chunks

log = logging.getLogger("hearth.notify")

DEFAULT_CHANNELS = ["inapp"]
WAITING = ("deferred", "retrying")  # due at next_attempt_at
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


def _invalid(message: str, param: str) -> HearthError:
    return HearthError(422, message, param=param, code="invalid_value")


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

    # -- preferences and subscriptions ------------------------------------------------------------------

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

    async def preferences(self, *, user_id: str) -> NotifyPreferencesOut:
        async with self.db.sessions() as s:
            return self._prefs_out(await s.get(NotifyPreferences, user_id))

    async def set_preferences(
        self, *, user_id: str, changes: NotifyPreferencesUpdate
    ) -> NotifyPreferencesOut:
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

    # -- notify -----------------------------------------------------------------------------------------

    async def notify(
        self, user_id: str, *, topic: str, dedupe_key: str, title: str, body: str, url: str | None = None
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
            channels = prefs.channels if prefs is not None else DEFAULT_CHANNELS
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
        return NotifyResult(deduplicated=False, deliveries=await self._deliveries(ids))

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
                await self._to_inbox(delivery.user_id, message)
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

    async def _to_inbox(self, user_id: str, message: Message) -> None:
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

    # -- reads ------------------------------------------------------------------------------------------

    async def _deliveries(self, ids: list[str]) -> list[DeliveryOut]:
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

    async def deliveries(
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

    async def inbox(
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
