"""Events stored a moment after they happen, many per transaction: for events a request reports but does not
depend on (`RAGQueryExecuted` after every query).

Publishing one event per request costs that request a transaction and a commit of its own, then a pass of
the outbox pump: on 2 shared cores the publish alone took 16 ms p50 under load, more than the query's own
search. A buffer holds the events in memory and stores them with `EventBus.publish_many` every `interval`
seconds, in order, in one transaction (a failed store is retried at the next tick), and flushes what it holds
when it stops, so a clean shutdown loses nothing. A crash loses at most the last `interval` of them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hearth.events.outbox import OutboxEvent
from hearth.events.schemas import Event
from hearth.platform.kit.tasks import cancelled

if TYPE_CHECKING:
    from hearth.events.bus import EventBus

log = logging.getLogger("hearth.events")


class EventBuffer:
    def __init__(self, bus: EventBus, *, interval: float = 0.25, max_pending: int = 50_000) -> None:
        self.bus = bus
        self.interval = interval
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[tuple[str | None, OutboxEvent]] = []  # (the event's user_id, its row)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def emit(self, event: Event) -> None:
        """Queue `event` for the outbox (no I/O). It is encoded now, so an event that cannot be stored
        fails its caller, as `EventBus.publish` would, instead of every later batch."""
        row = self.bus.row(event)
        if len(self._pending) >= self.max_pending:
            self.dropped += 1  # the outbox has been unreachable for a long time: shed events, not requests
            return
        self._pending.append((getattr(event, "user_id", None), row))

    async def forget(self, user_id: str) -> None:
        """Drop the user's events not stored yet. A store under way ends first, so every event of theirs
        is then either dropped or in the outbox, where the events context's erasure (run after every
        context's) finds it."""
        async with self._lock:
            self._pending = [(user, row) for user, row in self._pending if user != user_id]

    async def flush(self) -> None:
        """Store every queued event now, in one transaction; on failure they stay queued, in order."""
        async with self._lock:  # one store at a time: `stop` waits for the tick's store to end
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                async with self.bus.db.transaction() as session:
                    await self.bus.publish_rows([row for _user, row in batch], session)
            except Exception:
                log.exception("could not store %d events; will retry", len(batch))
                self._pending[:0] = batch

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-buffer")

    async def stop(self) -> None:
        """Stop the ticks and store what is queued. A store under way is not cancelled half-way (it
        might have committed): it finishes first."""
        self._task = await cancelled(self._task)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.shield(self.flush())
