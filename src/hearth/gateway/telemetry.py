"""Gateway telemetry off the request path: usage summed in memory, events stored in batches.

A request only adds to an in-memory sum (and, when per-request events are on, appends an event to a list);
a background task stores them, one outbox transaction per batch instead of one per request, which keeps
the gateway's added latency at a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hearth.events.schemas import Event
from hearth.gateway.events import InferenceUsage
from hearth.platform.kit.tasks import cancelled
from hearth.platform.kit.time import utcnow

log = logging.getLogger("hearth.gateway")

USAGE_WINDOW = 2.0  # seconds summed into one InferenceUsage per (user, key, alias)

_UsageKey = tuple[str, str | None, str]  # user_id, key_id, alias


class UsageMeter:
    """Sums calls and tokens per (user, key, alias) until drained into InferenceUsage events."""

    def __init__(self) -> None:
        self._sums: dict[_UsageKey, list[int]] = {}  # requests, failures, prompt, completion
        self._since = utcnow()

    def add(
        self, key: _UsageKey, prompt_tokens: int, completion_tokens: int, *, failed: bool = False
    ) -> None:
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = [0, 0, 0, 0]
        sums[0] += 1
        sums[1] += failed
        sums[2] += prompt_tokens
        sums[3] += completion_tokens

    def forget(self, user_id: str) -> None:
        """Drop the user's sums of the open window (erasure: they must not be published)."""
        self._sums = {k: v for k, v in self._sums.items() if k[0] != user_id}

    def drain(self) -> list[InferenceUsage]:
        """One event per key used since the last drain; the window restarts now."""
        now = utcnow()
        sums, self._sums = self._sums, {}
        start, self._since = self._since, now
        return [
            InferenceUsage(
                user_id=user_id,
                key_id=key_id,
                alias=alias,
                window_start=start,
                window_end=now,
                requests=requests,
                failures=failures,
                prompt_tokens=prompt,
                completion_tokens=completion,
            )
            for (user_id, key_id, alias), (requests, failures, prompt, completion) in sums.items()
        ]


class EventBatcher:
    def __init__(
        self,
        bus: Any,
        *,
        per_request: bool = False,
        interval: float = 0.2,
        usage_window: float = USAGE_WINDOW,
        max_pending: int = 50_000,
    ) -> None:
        self.bus = bus
        self.per_request = per_request  # InferenceCompleted/InferenceFailed for every call (opt-in)
        # Without per-request events only the usage windows are stored: no reason to wake more often.
        self.interval = interval if per_request else usage_window
        self.usage_window = usage_window
        self.max_pending = max_pending
        self.usage = UsageMeter()
        self._pending: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def emit(self, event: Event) -> None:
        if len(self._pending) >= self.max_pending:
            self.dropped += 1  # the outbox is unreachable for a long time: shed telemetry, not requests
            return
        self._pending.append(event)

    def forget(self, user_id: str) -> None:
        """Drop what is held in memory about the user: the open usage window and unstored events."""
        self.usage.forget(user_id)
        self._pending = [e for e in self._pending if getattr(e, "user_id", None) != user_id]

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-events")

    async def stop(self) -> None:
        self._task = await cancelled(self._task)
        self._pending.extend(self.usage.drain())  # the last window, so a restart loses no usage
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            async with self.bus.db.transaction() as session:
                await self.bus.publish_many(batch, session)
        except Exception:
            log.exception("could not store gateway events; will retry")
            self._pending[:0] = batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_usage = loop.time() + self.usage_window
        while True:
            await asyncio.sleep(self.interval)
            if loop.time() >= next_usage:
                self._pending.extend(self.usage.drain())
                next_usage = loop.time() + self.usage_window
            await self.flush()
