"""Publishes gateway events in batches, off the request path: one outbox transaction per batch instead
of one per request keeps the gateway's added latency at a fraction of a millisecond."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger("hearth.gateway")


class EventBatcher:
    def __init__(self, bus: Any, *, interval: float = 0.2, max_pending: int = 50_000) -> None:
        self.bus = bus
        self.interval = interval
        self.max_pending = max_pending
        self._pending: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def emit(self, event: Any) -> None:
        if len(self._pending) >= self.max_pending:
            self.dropped += 1  # the outbox is unreachable for a long time: shed telemetry, not requests
            return
        self._pending.append(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-events")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            async with self.bus.db.transaction() as session:
                for event in batch:
                    await self.bus.publish(event, session=session)
        except Exception:
            log.exception("could not store gateway events; will retry")
            self._pending[:0] = batch

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
