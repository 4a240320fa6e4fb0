"""In-process delivery: the pump hands each row to the subscribed handlers in this process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hearth.events import codec, outbox

if TYPE_CHECKING:
    from hearth.events.bus import EventBus
    from hearth.events.pump import Outcome

log = logging.getLogger("hearth.events")


class InProcessDelivery:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        # Handlers that already succeeded for a row being retried, so a retry only re-runs the failed
        # ones. In memory on purpose: after a restart they may run again (at-least-once).
        self._done: dict[int, set[str]] = {}

    def ready(self) -> bool:
        return True

    async def deliver(self, rows: list[outbox.OutboxEvent], outcome: Outcome) -> None:
        for row in rows:
            if await self._deliver_row(row, outcome):
                self._done.pop(row.seq, None)
                outcome.done(row)

    async def _deliver_row(self, row: outbox.OutboxEvent, outcome: Outcome) -> bool:
        """Deliver one row to its subscribers; True when all took it."""
        try:
            event = codec.decode(row.type, row.content_type, row.payload)
        except Exception as exc:
            await outcome.dead(row, repr(exc))
            return False
        done = self._done.setdefault(row.seq, set())
        errors: list[str] = []
        for sub in self.bus.subscriptions:
            if sub.consumer in done or not sub.matches(row.context, row.type):
                continue
            try:
                if await sub.deliver(self.bus.db, event):
                    self.bus.counters.consumed += 1
            except Exception as exc:
                self.bus.counters.failed += 1
                errors.append(f"{sub.consumer}: {exc!r}")
                log.warning("handler %s failed on %s %s: %r", sub.consumer, row.type, row.id, exc)
            else:
                done.add(sub.consumer)
        if not errors:
            return True
        if await outcome.failed(row, "; ".join(errors)) == outbox.DEAD:
            self._done.pop(row.seq, None)
        return False
