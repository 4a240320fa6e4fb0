"""EventBuffer (events/buffer.py): events emitted by requests reach the outbox in order, in batches; a
failed store keeps them for the next try; an event no consumer could decode fails its caller at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hearth.events.buffer import EventBuffer
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.events.schemas import Event
from hearth.platform.db import Database
from hearth.rag.events import RAGQueryExecuted


def _event(user: str, n: int) -> RAGQueryExecuted:
    return RAGQueryExecuted(
        user_id=user,
        collection_id="c",
        mode="hybrid",
        top_k=10,
        top_n=3,
        source_chunk_ids=[f"chunk-{n}"],
        generated=False,
        latency_ms={"total": float(n)},
    )


async def _stored(database: Database) -> list[tuple[str, str]]:
    async with database.transaction() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
    return [(r.type, r.id) for r in rows]


async def test_events_are_stored_in_order_and_kept_when_a_store_fails(database, tmp_path):
    bus = EventBus(database)
    buffer = EventBuffer(bus)
    events = [_event("alice", n) for n in range(3)]
    # The first store fails (a database without the outbox table): nothing is lost, and order is kept.
    bus.db = Database(f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}")
    for e in events[:2]:
        buffer.emit(e)
    await buffer.flush()
    assert buffer.pending == 2 and await _stored(database) == []
    await bus.db.close()
    bus.db = database
    buffer.emit(events[2])
    await buffer.flush()
    assert buffer.pending == 0
    assert await _stored(database) == [("RAGQueryExecuted", e.id) for e in events]
    assert bus.published == 3


async def test_forget_drops_only_that_users_unstored_events(database):
    buffer = EventBuffer(EventBus(database))
    kept, dropped = _event("alice", 1), _event("bob", 2)
    buffer.emit(kept)
    buffer.emit(dropped)
    await buffer.forget("bob")
    await buffer.stop()  # stopping stores what is queued
    assert await _stored(database) == [("RAGQueryExecuted", kept.id)]


async def test_an_event_that_cannot_be_stored_fails_its_caller(database):
    class Unregistered(Event):  # no context: no consumer could decode it
        user_id: str

    buffer = EventBuffer(EventBus(database))
    with pytest.raises(TypeError):
        buffer.emit(Unregistered(user_id="alice"))
    assert buffer.pending == 0
