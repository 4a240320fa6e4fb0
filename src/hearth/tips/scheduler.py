"""The tips background loop: every tick, sync the connectors that are due and run the agents whose
schedule says so. Each step is on its own: a failing step is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import logging

from hearth.platform.kit.tasks import cancelled
from hearth.tips.precompute import Precompute
from hearth.tips.sync import Connectors

log = logging.getLogger("hearth.tips")


class Scheduler:
    def __init__(self, connectors: Connectors, precompute: Precompute, *, tick_seconds: float) -> None:
        self.connectors = connectors
        self.precompute = precompute
        self.tick_seconds = tick_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.tick_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="tips-scheduler")

    async def stop(self) -> None:
        self._task = await cancelled(self._task)

    async def tick(self) -> None:
        try:
            await self.connectors.sync_due()
        except Exception:
            log.exception("tips: syncing connectors failed")
        try:
            await self.precompute.run_due()
        except Exception:
            log.exception("tips: agent pre-compute failed")

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.tick_seconds)
