"""The in-process event bus over the real outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from sqlalchemy import select, text

from hearth.events import codec
from hearth.events.bus import EventBus
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.events.outbox import Retry
from hearth.events.schemas import Event, event_class
from hearth.gateway.events import InferenceCompleted, InferenceRequested
from hearth.platform.db import Database
from tests.helpers import wait_for

FAST = Retry(max_attempts=3, base=0.02, cap=0.1)


class _TestEvent(Event):
    context: ClassVar[str] = "evtest"


class Pinged(_TestEvent):
    n: int


class Embedded(_TestEvent):
    vector: list[float]


class AudioChunk(_TestEvent):
    audio: bytes
    rate: int = 16000


def make_bus(db: Database, **kwargs: object) -> EventBus:
    return EventBus(db, retry=FAST, poll_interval=0.05, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def bus(database: Database) -> AsyncIterator[EventBus]:
    b = make_bus(database)
    yield b
    await b.stop()


async def outbox_rows(db: Database) -> list[OutboxEvent]:
    async with db.transaction() as s:
        return list(await s.scalars(select(OutboxEvent).order_by(OutboxEvent.seq)))


# --- schemas and codec ----------------------------------------------------------------------------


def test_registry_and_type_round_trip() -> None:
    ev = InferenceCompleted(
        alias="chat",
        deployment="smollm2",
        request_id="r1",
        user_id="u1",
        status=200,
        latency_ms=12.5,
        ttft_ms=None,
        prompt_tokens=3,
        completion_tokens=7,
    )
    assert event_class("InferenceCompleted") is InferenceCompleted
    assert ev.context == "inference" and ev.type_name() == "InferenceCompleted"
    content_type, payload = codec.encode(ev)
    assert content_type == codec.JSON
    back = codec.decode("InferenceCompleted", content_type, payload)
    assert type(back) is InferenceCompleted and back == ev


def test_msgpack_for_vectors_bytes_and_big_payloads() -> None:
    vec = Embedded(vector=[random.random() for _ in range(384)])
    ct, payload = codec.encode(vec)
    assert ct == codec.MSGPACK
    assert codec.decode("Embedded", ct, payload) == vec

    audio = AudioChunk(audio=bytes(range(256)) * 4)
    ct, payload = codec.encode(audio)
    assert ct == codec.MSGPACK
    assert codec.decode("AudioChunk", ct, payload) == audio

    ct, _ = codec.encode(Pinged(n=1), json_limit=10)  # small limit: JSON too big -> msgpack
    assert ct == codec.MSGPACK


def test_duplicate_type_name_is_refused() -> None:
    with pytest.raises(TypeError):

        class Pinged(_TestEvent):  # same wire name as the module-level class
            n: int


# --- in-process delivery ---------------------------------------------------------------------------


async def test_publish_subscribe_in_process(database: Database, bus: EventBus) -> None:
    got: list[Event] = []
    only_requested: list[Event] = []

    async def on_any(ev: Event) -> None:
        got.append(ev)

    async def on_requested(ev: Event) -> None:
        only_requested.append(ev)

    bus.subscribe("all-test", on_any, contexts={"evtest", "inference"})
    await bus.start()
    bus.subscribe("req", on_requested, types={"InferenceRequested"})  # after start works too

    req = InferenceRequested(
        alias="a", deployment="d", request_id="r", user_id="u", priority="hi", stream=True
    )
    vec = Embedded(vector=[random.random() for _ in range(384)])
    await bus.publish(Pinged(n=1))
    await bus.publish(req)
    await bus.publish(vec)
    await wait_for(lambda: len(got) == 3 and len(only_requested) == 1 and bus.dispatched == 3)

    assert [type(e) for e in got] == [Pinged, InferenceRequested, Embedded]  # seq order
    assert got[1] == req and got[2] == vec and only_requested == [req]
    rows = await outbox_rows(database)
    assert [r.status for r in rows] == ["dispatched"] * 3
    assert [r.content_type for r in rows] == [codec.JSON, codec.JSON, codec.MSGPACK]
    assert bus.published == 3 and bus.dispatched == 3 and bus.failed == 0


async def test_restart_delivers_pending_exactly_once(database: Database) -> None:
    first = make_bus(database)
    await first.publish(Pinged(n=1))  # never started: the row waits in the outbox
    await first.publish(Pinged(n=2))
    await first.stop()

    got: list[int] = []

    async def handler(ev: Pinged) -> None:
        got.append(ev.n)

    second = make_bus(database)
    second.subscribe("restart", handler)
    await second.start()
    try:
        await wait_for(lambda: len(got) == 2)
        # A later event arrives only after another pass, which would have delivered 1 and 2 again first.
        await second.publish(Pinged(n=3))
        await wait_for(lambda: got[-1] == 3)
    finally:
        await second.stop()
    assert got == [1, 2, 3]

    third = make_bus(database)  # and a later restart finds nothing left to deliver
    third.subscribe("restart", handler)
    await third.start()
    await third.publish(Pinged(n=4))
    await wait_for(lambda: got[-1] == 4)
    await third.stop()
    assert got == [1, 2, 3, 4]


async def test_stop_lets_the_pass_in_progress_finish(database: Database) -> None:
    # Stopping while a handler runs: the pass completes and marks its row, instead of being cancelled inside a
    # database call (the row would wait for its claim to expire and be delivered a second time).
    handling = asyncio.Event()
    got: list[int] = []

    async def slow(ev: Pinged) -> None:
        handling.set()
        await asyncio.sleep(0.3)
        got.append(ev.n)

    bus = make_bus(database)
    bus.subscribe("slow", slow)
    await bus.start()
    await bus.publish(Pinged(n=1))
    await asyncio.wait_for(handling.wait(), timeout=10)
    await bus.stop()
    assert got == [1]
    assert [r.status for r in await outbox_rows(database)] == ["dispatched"]


async def test_transactional_outbox_rollback_publishes_nothing(database: Database, bus: EventBus) -> None:
    got: list[int] = []

    async def handler(ev: Pinged) -> None:
        got.append(ev.n)

    bus.subscribe("tx", handler)
    await bus.start()

    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await bus.publish(Pinged(n=1), session=session)
            raise RuntimeError("business logic failed")
    async with database.transaction() as session:
        await bus.publish(Pinged(n=2), session=session)

    await wait_for(lambda: got == [2])
    assert len(await outbox_rows(database)) == 1
    assert bus.published == 1
    await bus.publish(Pinged(n=3))  # delivered after anything still due
    await wait_for(lambda: got[-1] == 3)
    assert got == [2, 3]


async def test_publish_many_keeps_order_and_commits_with_the_transaction(
    database: Database, bus: EventBus
) -> None:
    got: list[int] = []

    async def handler(ev: Pinged) -> None:
        got.append(ev.n)

    bus.subscribe("many", handler)
    await bus.start()
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await bus.publish_many([Pinged(n=-1), Pinged(n=-2)], session)
            raise RuntimeError("business logic failed")
    sent = [Pinged(n=n) for n in range(1, 7)]
    async with database.transaction() as session:
        await bus.publish_many(sent[:5], session)
        await bus.publish_many([], session)
        await bus.publish(sent[5], session=session)

    await wait_for(lambda: len(got) == 6)
    assert got == [1, 2, 3, 4, 5, 6]
    assert [r.id for r in await outbox_rows(database)] == [e.id for e in sent]
    assert bus.published == 6


async def test_handler_failure_is_retried_then_succeeds(database: Database, bus: EventBus) -> None:
    calls: list[int] = []
    other: list[int] = []

    async def flaky(ev: Pinged) -> None:
        calls.append(ev.n)
        if len(calls) < 3:
            raise ValueError("transient")

    async def steady(ev: Pinged) -> None:
        other.append(ev.n)

    bus.subscribe("flaky", flaky)
    bus.subscribe("steady", steady)
    await bus.start()
    await bus.publish(Pinged(n=7))
    await wait_for(lambda: bus.dispatched == 1)

    assert calls == [7, 7, 7]
    assert other == [7]  # a retry re-runs only the handler that failed
    (row,) = await outbox_rows(database)
    assert row.status == "dispatched" and row.attempts == 2 and "transient" in (row.last_error or "")
    assert bus.failed == 2


async def test_permanent_failure_goes_dead(database: Database, bus: EventBus) -> None:
    calls = 0

    async def broken(ev: Pinged) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    markers: list[Event] = []

    async def marker(ev: Embedded) -> None:
        markers.append(ev)

    bus.subscribe("broken", broken, types={"Pinged"})
    bus.subscribe("marker", marker, types={"Embedded"})
    await bus.start()
    await bus.publish(Pinged(n=1))
    await wait_for(lambda: bus.counters.dead == 1)
    await bus.publish(Embedded(vector=[0.5]))  # a pass after the row died: it is not retried any more
    await wait_for(lambda: len(markers) == 1)

    row, _ = await outbox_rows(database)
    assert row.status == "dead" and row.attempts == FAST.max_attempts
    assert calls == FAST.max_attempts
    assert "always" in (row.last_error or "")


async def test_idempotent_consumer_never_sees_a_duplicate(database: Database, bus: EventBus) -> None:
    seen: list[int] = []

    async def handler(ev: Pinged, session) -> None:  # type: ignore[no-untyped-def]
        seen.append(ev.n)
        await session.execute(text("SELECT 1"))  # the ledger's transaction is usable by the handler

    bus.subscribe("idem", handler, idempotent=True)
    await bus.start()
    ev = Pinged(n=1)
    await bus.publish(ev)
    await wait_for(lambda: bus.dispatched == 1)

    # Simulate a redelivery (a crash after handling, before the row was marked dispatched).
    async with database.transaction() as s:
        await s.execute(text("UPDATE event_outbox SET status = 'pending'"))
    bus.wake()
    await wait_for(lambda: bus.dispatched == 2)

    assert seen == [1]
    async with database.transaction() as s:
        ledger = list(await s.scalars(select(ConsumedEvent)))
    assert [(c.consumer, c.event_id) for c in ledger] == [("idem", ev.id)]


async def test_idempotent_handler_failure_leaves_no_ledger_row(database: Database, bus: EventBus) -> None:
    calls = 0

    async def flaky(ev: Pinged) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("first time fails")

    bus.subscribe("idem-flaky", flaky, idempotent=True)
    await bus.start()
    await bus.publish(Pinged(n=1))
    await wait_for(lambda: bus.dispatched == 1)
    assert calls == 2  # the failed attempt did not record the event as consumed


async def test_publish_refuses_unregistered_events(database: Database, bus: EventBus) -> None:
    class Contextless(Event):
        n: int

    with pytest.raises(TypeError):
        await bus.publish(Contextless(n=1))
    assert await outbox_rows(database) == []


def test_subscribe_validation(database: Database) -> None:
    b = make_bus(database)

    async def h(ev: Event) -> None: ...

    async def h2(ev: Event, session) -> None: ...  # type: ignore[no-untyped-def]

    b.subscribe("one", h)
    with pytest.raises(ValueError):
        b.subscribe("one", h)
    with pytest.raises(ValueError):
        b.subscribe("bad name", h)
    with pytest.raises(ValueError):
        b.subscribe("needs-idem", h2)
