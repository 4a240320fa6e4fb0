"""The one outbox pump: reads due rows in `seq` order and hands each batch to a delivery.

A delivery is where rows go: in-process handlers (`InProcessDelivery`) or JetStream (`JetStreamDelivery`).
The pump owns what both share: waking and polling, batching, marking every delivered row dispatched in one
transaction per pass, retries with backoff and dead rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

from hearth.events import outbox
from hearth.platform.kit.tasks import cancelled

if TYPE_CHECKING:
    from hearth.events.bus import EventBus

log = logging.getLogger("hearth.events")


class Outage(Exception):
    """The delivery's transport is unreachable: stop this pass, keep the rows, come back later."""


class Outcome:
    """What one pass did to its rows: the delivered ones (marked together at the end) and the failures."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.delivered: list[int] = []

    def done(self, row: outbox.OutboxEvent) -> None:
        self.delivered.append(row.seq)

    async def failed(self, row: outbox.OutboxEvent, error: str) -> str:
        """Count a failed attempt at `row` (retried with backoff, dead after the bound); its new status."""
        status, delay = await outbox.mark_failed(self.bus.db, row, error, self.bus.retry)
        if status == outbox.DEAD:
            self.bus.counters.dead += 1
            log.error("event %s %s is dead after %d attempts: %s", row.type, row.id, row.attempts + 1, error)
        else:
            log.info("event %s %s will be retried in %.2fs", row.type, row.id, delay)
        return status

    async def dead(self, row: outbox.OutboxEvent, error: str) -> None:
        """Give up on `row` at once (it can never be delivered, e.g. it cannot be decoded)."""
        log.error("event %s (%s) cannot be delivered, marking dead: %s", row.id, row.type, error)
        await outbox.mark_dead(self.bus.db, row.seq, error)
        self.bus.counters.dead += 1


class Delivery(Protocol):
    """Where the pump sends rows."""

    def ready(self) -> bool:
        """Whether a pass can run now (the transport is connected)."""
        ...

    async def deliver(self, rows: list[outbox.OutboxEvent], outcome: Outcome) -> None:
        """Deliver `rows` in order, telling `outcome` which were delivered and which failed.

        Raising `Outage` ends the pass; the rows reported delivered so far are still marked."""
        ...


class OutboxPump:
    def __init__(self, bus: EventBus, delivery: Delivery, *, outage_wait: float = 1.0) -> None:
        self.bus = bus
        self.delivery = delivery
        self.outage_wait = outage_wait
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="hearth-events-pump")

    async def stop(self, grace: float = 5.0) -> None:
        """Let the pass in progress finish, then stop; cancel it only if it outlasts `grace` seconds.

        A cancelled pass cuts off the handler it is running (its event runs again on the next start), leaves a
        database call for the driver's thread to finish after the caller has moved on (aiosqlite then posts
        its result to a loop that may be closed), and, inside its closing calls, leaves claimed rows unmarked
        until the claim expires."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        self._task = await cancelled(self._task)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        outage_delay = self.outage_wait
        while not self._stopping:
            self._wake.clear()
            delay = self.bus.poll_interval
            if self.delivery.ready():
                try:
                    delay = await self.pump_once()
                    outage_delay = self.outage_wait
                except Outage as exc:
                    log.warning("events: relay paused (%r); retrying in %.1fs", exc.__cause__, outage_delay)
                    delay, outage_delay = outage_delay, min(outage_delay * 2, 10.0)
                except Exception:
                    log.exception("event pump pass failed; retrying")
            if delay > 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def pump_once(self) -> float:
        """Deliver one batch of due rows; returns how long to sleep before the next pass."""
        bus = self.bus
        rows = await outbox.due(bus.db, limit=bus.batch_size)  # claimed: no other replica sends these
        outcome = Outcome(bus)
        try:
            await self.delivery.deliver(rows, outcome)
        finally:
            # One transaction for the batch instead of one per row (it was the largest cost of a busy
            # ingest). A crash before it redelivers these rows: delivery is at-least-once.
            await outbox.mark_dispatched(bus.db, outcome.delivered)
            bus.counters.dispatched += len(outcome.delivered)
            delivered = set(outcome.delivered)
            # Rows an outage left undelivered go back at once rather than when the claim expires.
            await outbox.release(bus.db, [r.seq for r in rows if r.seq not in delivered])
        if len(rows) == bus.batch_size:
            return 0.0
        next_retry = await outbox.seconds_to_next_retry(bus.db)
        return bus.poll_interval if next_retry is None else min(bus.poll_interval, next_retry)
