"""Outbox storage: insert events, claim due rows, record success or a retry with backoff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events import codec
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.events.schemas import Event, registered_events
from hearth.platform.db import Database, utcnow

PENDING = "pending"
DISPATCHED = "dispatched"
DEAD = "dead"


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff shared by the outbox pump and JetStream naks."""

    max_attempts: int = 5
    base: float = 0.5  # seconds before the first retry
    cap: float = 60.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, attempts - 1))


def new_row(event: Event, *, json_limit: int = codec.JSON_LIMIT) -> OutboxEvent:
    # Refuse at publish time what no consumer could ever decode.
    if not event.context or registered_events().get(event.type_name()) is not type(event):
        raise TypeError(f"{type(event).__name__} is not a registered event type (does it set `context`?)")
    content_type, payload = codec.encode(event, json_limit=json_limit)
    return OutboxEvent(
        id=event.id,
        context=event.context,
        type=event.type_name(),
        content_type=content_type,
        payload=payload,
        status=PENDING,
        attempts=0,
    )


async def due(db: Database, *, limit: int = 100, now: datetime | None = None) -> list[OutboxEvent]:
    """Pending rows whose retry time has come, oldest first."""
    now = now or utcnow()
    async with db.transaction() as s:
        rows = await s.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.status == PENDING)
            .where(or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now))
            .order_by(OutboxEvent.seq)
            .limit(limit)
        )
        return list(rows)


async def mark_dispatched(db: Database, seq: int | list[int]) -> None:
    """Mark one row, or many in one transaction (a pump pass marks all it delivered at once)."""
    seqs = [seq] if isinstance(seq, int) else seq
    if not seqs:
        return
    async with db.transaction() as s:
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_(seqs))
            .values(status=DISPATCHED, dispatched_at=utcnow(), next_attempt_at=None)
        )


async def mark_failed(db: Database, row: OutboxEvent, error: str, retry: Retry) -> tuple[str, float]:
    """Count a failed attempt; returns the new status and the delay before the next one."""
    attempts = row.attempts + 1
    status = DEAD if attempts >= retry.max_attempts else PENDING
    delay = retry.delay(attempts)
    async with db.transaction() as s:
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq == row.seq)
            .values(
                status=status,
                attempts=attempts,
                last_error=error[:4000],
                next_attempt_at=utcnow() + timedelta(seconds=delay) if status == PENDING else None,
            )
        )
    return status, delay


async def mark_dead(db: Database, seq: int, error: str) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq == seq)
            .values(status=DEAD, last_error=error[:4000], next_attempt_at=None)
        )


async def seconds_to_next_retry(db: Database) -> float | None:
    """How long until the earliest scheduled retry, so the pump sleeps exactly that long."""
    async with db.transaction() as s:
        when = await s.scalar(
            select(func.min(OutboxEvent.next_attempt_at)).where(OutboxEvent.status == PENDING)
        )
    if when is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


# --- idempotency ledger ---------------------------------------------------------------------------


async def already_consumed(session: AsyncSession, consumer: str, event_id: str) -> bool:
    found = await session.scalar(
        select(ConsumedEvent.id).where(ConsumedEvent.consumer == consumer, ConsumedEvent.event_id == event_id)
    )
    return found is not None


def record_consumed(session: AsyncSession, consumer: str, event_id: str) -> None:
    session.add(ConsumedEvent(consumer=consumer, event_id=event_id))
