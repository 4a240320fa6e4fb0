"""Outbox storage: insert events, claim due rows, record success or a retry with backoff.

Replicas relaying one outbox each claim their rows (`claim_due`): one UPDATE marks a batch of unclaimed due
rows with the pass's token and a deadline, so no two replicas send a row (JetStream's `Nats-Msg-Id` dedupe
covers the crash between its ack and our update). A claim dies with its deadline: rows a killed replica had
claimed are sent by another after `CLAIM_SECONDS`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.events import codec
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.events.schemas import Event, registered_events
from hearth.platform.db import Database, new_id, utcnow
from hearth.platform.retention import delete_in_batches

PENDING = "pending"
DISPATCHED = "dispatched"
DEAD = "dead"
CLAIM_SECONDS = 30.0  # a pass's claim on its rows; far longer than a pass takes


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


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        OutboxEvent.status == PENDING,
        or_(OutboxEvent.next_attempt_at.is_(None), OutboxEvent.next_attempt_at <= now),
        or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now),
    )


async def due(db: Database, *, limit: int = 100, now: datetime | None = None) -> list[OutboxEvent]:
    """Claim up to `limit` pending rows whose retry time has come and that no other pass holds, oldest
    first; they are this pass's until `CLAIM_SECONDS` from now (or until marked or released)."""
    now = now or utcnow()
    token = new_id()
    oldest = select(OutboxEvent.seq).where(_claimable(now)).order_by(OutboxEvent.seq).limit(limit)
    if not db.is_sqlite:
        # Concurrent passes pick different rows instead of queueing behind each other's (SQLite: one writer).
        oldest = oldest.with_for_update(skip_locked=True)
    async with db.transaction() as s:
        # The outer WHERE repeats the condition: a pass that still met a row another just claimed skips it.
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_(oldest.scalar_subquery()), _claimable(now))
            .values(claimed_by=token, claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        )
        rows = await s.scalars(
            select(OutboxEvent).where(OutboxEvent.claimed_by == token).order_by(OutboxEvent.seq)
        )
        return list(rows)


async def release(db: Database, seqs: list[int]) -> None:
    """End this pass's claim on rows it did not deliver (an outage cut the pass short)."""
    if not seqs:
        return
    async with db.transaction() as s:
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_(seqs), OutboxEvent.status == PENDING)
            .values(claimed_until=None)
        )


async def mark_dispatched(db: Database, seq: int | list[int]) -> None:
    """Mark one row, or many in one transaction (a pump pass marks all it delivered at once)."""
    seqs = [seq] if isinstance(seq, int) else seq
    if not seqs:
        return
    async with db.transaction() as s:
        await s.execute(
            update(OutboxEvent)
            .where(OutboxEvent.seq.in_(seqs))
            .values(status=DISPATCHED, dispatched_at=utcnow(), next_attempt_at=None, claimed_until=None)
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
                claimed_until=None,
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
            select(func.min(func.coalesce(OutboxEvent.claimed_until, OutboxEvent.next_attempt_at))).where(
                OutboxEvent.status == PENDING,
                or_(OutboxEvent.next_attempt_at.is_not(None), OutboxEvent.claimed_until.is_not(None)),
            )
        )
    if when is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


async def prune(
    db: Database, *, dispatched_before: datetime, consumed_before: datetime, batch: int = 5000
) -> int:
    """Delete dispatched rows delivered before `dispatched_before` and ledger entries written before
    `consumed_before`, `batch` rows per transaction (a large backlog never holds a long lock); returns how
    many rows went. Pending and dead rows stay whatever their age: the first still have to go out, the
    second are what an operator inspects."""
    outbox_rows = await delete_in_batches(
        db,
        OutboxEvent.seq,
        and_(OutboxEvent.status == DISPATCHED, OutboxEvent.dispatched_at < dispatched_before),
        batch=batch,
    )
    ledger_rows = await delete_in_batches(
        db, ConsumedEvent.id, ConsumedEvent.created_at < consumed_before, batch=batch
    )
    return outbox_rows + ledger_rows


# --- idempotency ledger ---------------------------------------------------------------------------


async def already_consumed(session: AsyncSession, consumer: str, event_id: str) -> bool:
    found = await session.scalar(
        select(ConsumedEvent.id).where(ConsumedEvent.consumer == consumer, ConsumedEvent.event_id == event_id)
    )
    return found is not None


def record_consumed(session: AsyncSession, consumer: str, event_id: str) -> None:
    session.add(ConsumedEvent(consumer=consumer, event_id=event_id))
