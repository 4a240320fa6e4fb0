"""Helpers for the event-consumer tests: a bus on either transport, and a forced redelivery."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from sqlalchemy import select, update

from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.events.nats_relay import CONTENT_TYPE_HEADER, TYPE_HEADER
from hearth.events.outbox import Retry
from hearth.platform.db import Database
from tests.helpers import wait_for_async

NATS_URL = os.environ.get("HEARTH_TEST_NATS", "nats://127.0.0.1:4222")
FAST = Retry(max_attempts=3, base=0.02, cap=0.2)


@contextlib.asynccontextmanager
async def event_bus(db: Database, transport: str, prefix: str) -> AsyncIterator[EventBus]:
    """A bus (not started), in-process or on JetStream under the test's own prefix; stopped afterwards."""
    nats_url = NATS_URL if transport == "nats" else None
    bus = EventBus(db, nats_url=nats_url, prefix=prefix, retry=FAST, poll_interval=0.05, reconnect_wait=0.2)
    try:
        yield bus
    finally:
        await bus.stop()


async def redeliver(bus: EventBus, db: Database, event_id: str) -> None:
    """Hand a delivered event to the consumers again, as after a crash between handling and acknowledging."""

    # The consumers may have handled the event a moment before the pump marks its row dispatched.
    async def dispatched() -> bool:
        async with db.transaction() as s:
            status = await s.scalar(select(OutboxEvent.status).where(OutboxEvent.id == event_id))
        return status == "dispatched"

    await wait_for_async(dispatched, what=f"event {event_id} dispatched")
    async with db.transaction() as s:
        row = await s.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
        assert row is not None
        if bus.relay is None:
            await s.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(status="pending"))
    if bus.relay is None:
        bus.wake()
        return
    # Past JetStream's duplicate window the same event arrives again under a new message id.
    headers = {
        "Nats-Msg-Id": f"again-{event_id}",
        CONTENT_TYPE_HEADER: row.content_type,
        TYPE_HEADER: row.type,
    }
    assert bus.relay.js is not None
    await bus.relay.js.publish(bus.relay.subject(row.context, row.type), row.payload, headers=headers)
