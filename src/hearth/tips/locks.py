"""One run of an agent at a time, across processes: on PostgreSQL a transaction-level advisory lock per
agent (released by commit, or by the server when a crashed process's connection drops); on SQLite, which
Hearth runs in one process, an asyncio lock per agent.

A scheduled pass over all users *tries* the lock and skips the agent when another process holds it; a run
for one user (a tip asked for before the scheduler got there) waits for it. Either way no agent ever runs
twice at once for a user."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from hearth.platform.db import Database


def lock_key(agent_id: str) -> int:
    """A stable signed 64-bit key for the agent (advisory locks take bigint)."""
    return int.from_bytes(
        hashlib.sha256(f"hearth.tips.agent:{agent_id}".encode()).digest()[:8], "big", signed=True
    )


class AgentLocks:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, agent_id: str, *, wait: bool) -> AsyncIterator[bool]:
        """Yields True while holding the agent's lock; False (at once) when `wait` is off and it is taken."""
        if self.db.is_sqlite:
            lock = self._local.setdefault(agent_id, asyncio.Lock())
            if not wait and lock.locked():
                yield False
                return
            async with lock:
                yield True
            return
        async with self.db.engine.connect() as conn, conn.begin():
            if wait:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(agent_id)})
                got = True
            else:
                got = bool(
                    await conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(agent_id)})
                )
            yield got
