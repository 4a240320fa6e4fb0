"""Retention: contexts register rules ("delete X older than N"), one sweeper enforces them all.

The clock is injectable so tests can move time forward instead of waiting. With several replicas on one
database only one sweeps: the loop sweeps while it holds the named lease "platform.retention"
(platform/kit/leases.py), which its holder renews each period; another replica takes over when it dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import InstrumentedAttribute

from hearth.platform.db import Database, utcnow
from hearth.platform.kit.leases import Leases
from hearth.platform.kit.tasks import cancelled

log = logging.getLogger("hearth.retention")
LEASE = "platform.retention"


@dataclass(frozen=True)
class RetentionRule:
    name: str  # e.g. "voice.audio", "chat.messages"
    max_age: timedelta
    sweep: Callable[[datetime], Awaitable[int]]  # deletes what is older than the cutoff; returns how many


async def delete_in_batches(
    db: Database, key: InstrumentedAttribute[Any], old: Any, *, batch: int = 5000
) -> int:
    """Delete the rows of `key`'s table that match `old`, `batch` at a time in `key` order, each batch in its
    own transaction (a large backlog never holds a long lock); returns how many went."""
    table = key.class_
    removed = 0
    while True:
        async with db.transaction() as s:
            chunk = select(key).where(old).order_by(key).limit(batch).scalar_subquery()
            count = (await s.execute(delete(table).where(key.in_(chunk)))).rowcount or 0  # type: ignore[attr-defined]
        removed += count
        if count < batch:
            return removed


class RetentionSweeper:
    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utcnow,
        interval_seconds: float = 60.0,
        leases: Leases | None = None,
    ) -> None:
        self.rules: list[RetentionRule] = []
        self.clock = clock
        self.interval_seconds = interval_seconds
        self.leases = leases  # None: this process sweeps on its own (one replica)
        self.swept = 0  # sweeps this process ran (the others were another replica's turn)
        self._task: asyncio.Task[None] | None = None

    def register(self, rule: RetentionRule) -> None:
        if any(r.name == rule.name for r in self.rules):
            raise ValueError(f"retention rule {rule.name!r} is registered twice")
        self.rules.append(rule)

    async def run_once(self) -> dict[str, int]:
        """Applies every rule once; returns how many items each deleted."""
        now = self.clock()
        deleted: dict[str, int] = {}
        for rule in self.rules:
            try:
                deleted[rule.name] = await rule.sweep(now - rule.max_age)
            except Exception:  # one failing rule must not stop the others
                log.exception("retention rule failed", extra={"rule": rule.name})
                deleted[rule.name] = 0
        return deleted

    def start(self) -> None:
        if self._task is None and self.interval_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name="retention-sweeper")

    async def stop(self) -> None:
        self._task = await cancelled(self._task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            if await self._my_turn():
                await self.run_once()
                self.swept += 1

    async def _my_turn(self) -> bool:
        """Whether this replica sweeps now: it holds the lease, renewed for one and a half periods, so the
        holder keeps it from sweep to sweep and another replica takes over within 1.5 periods of its death."""
        if self.leases is None:
            return True
        try:
            return await self.leases.acquire(LEASE, ttl=1.5 * self.interval_seconds)
        except Exception:
            log.warning("could not take the retention lease; skipping this sweep", exc_info=True)
            return False
