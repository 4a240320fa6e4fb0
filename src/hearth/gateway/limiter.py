"""A concurrency limit with a priority queue: when a deployment is full, premium requests wait ahead of
standard ones, and first come first served within a class."""

from __future__ import annotations

import asyncio
import heapq
import itertools

PRIORITY_RANK = {"premium": 0, "standard": 1}


class SlotTimeout(Exception):
    """No slot freed up within the wait allowed."""


class PriorityLimiter:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def load(self) -> int:
        return self.in_flight + self._queued

    async def acquire(self, priority: str = "standard", timeout: float | None = None) -> None:
        if self.limit is None or (self.in_flight < self.limit and not self._queued):
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (PRIORITY_RANK.get(priority, 1), next(self._seq), future))
        self._queued += 1
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if future.done() and not future.cancelled():
                # The slot was handed to us just as we gave up: pass it on rather than leak it.
                self.release()
            else:
                future.cancel()
                self._queued -= 1
            if isinstance(exc, TimeoutError):
                raise SlotTimeout from None
            raise

    def release(self) -> None:
        self.in_flight -= 1
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if future.cancelled():
                continue
            self._queued -= 1
            self.in_flight += 1
            future.set_result(None)
            return
