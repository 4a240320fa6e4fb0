"""Work that exactly one replica must do: named leases, leased rows and advisory locks, in one place.

Several `hearth serve` replicas share one database. Whatever work a replica takes from it must be taken by
that replica alone, and must come back to the others when the replica dies without saying so (SIGKILL, a lost
node). Three primitives cover the cases:

- `Leases` — a *named* lease with an expiry (`work_leases` row): "this replica runs the retention sweep for
  the next 60 s". `acquire` is one upsert that succeeds when the lease is free, expired, or already ours
  (renewal); `held(name, ttl)` renews it in the background while the caller works and releases it after.
  Periodic singletons use it: retention sweeps, schedulers (tips, workflows).
- `LeasedRows` — *rows* of a job table claimed with an expiry: the table has `lease_owner` and
  `lease_expires_at` columns (`LeaseColumns`), claims select with `FOR UPDATE SKIP LOCKED` on PostgreSQL
  (`claimable`), a heartbeat extends every lease this replica holds, `give_back` returns them at
  shutdown, and rows whose lease expired are claimable again (`expired`). The ingestion worker uses it.
- `advisory_lock(db, name)` — a cross-replica mutex held for a block of work (PostgreSQL session advisory
  lock; freed by the server if the holder's connection dies). Index writes of one collection use it.

On SQLite (one host, one writer) the row locks and advisory locks are no-ops; the named lease still works.
Expiries use each replica's wall clock, so replicas need NTP-synchronised clocks (skew well below the TTLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, String, and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from hearth.platform.db import Base, Database
from hearth.platform.kit.tasks import cancelled
from hearth.platform.kit.time import UtcDateTime, utcnow

log = logging.getLogger("hearth.leases")

# Who holds a lease: unique per process start, readable in the table (host, pid, a random suffix so a
# restarted process with a recycled pid is not mistaken for its predecessor).
_HOST = socket.gethostname()[:48]
INSTANCE_ID = f"{_HOST}-{os.getpid()}-{secrets.token_hex(3)}"


def holder_is_gone(holder: str | None) -> bool:
    """Whether `holder` was a process on this host that no longer runs: its leases need not wait out their
    TTL (a server restarted after a crash takes its predecessor's jobs back at once). Holders on other hosts
    are never judged here; only their TTL frees their leases."""
    if not holder or not holder.startswith(f"{_HOST}-"):
        return False
    pid_text = holder[len(_HOST) + 1 :].rpartition("-")[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return holder != INSTANCE_ID
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


T = TypeVar("T")


class WorkLease(Base):
    """A named lease: who does the work called `name` until `expires_at`."""

    __tablename__ = "work_leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(96), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)


class Leases:
    """Named leases with expiry over `work_leases`."""

    def __init__(
        self, db: Database, *, holder: str = INSTANCE_ID, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.holder = holder
        self.clock = clock

    async def acquire(self, name: str, ttl: float) -> bool:
        """Take (or renew) the lease `name` for `ttl` seconds; False while another holder's lease runs."""
        now = self.clock()
        insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        statement = (
            insert(WorkLease)
            .values(name=name, holder=self.holder, expires_at=now + timedelta(seconds=ttl))
            .on_conflict_do_update(
                index_elements=[WorkLease.name],
                set_={"holder": self.holder, "expires_at": now + timedelta(seconds=ttl)},
                # One statement decides: free (expired) or already ours. Concurrent upserts of one name are
                # serialised by the primary key, and the loser's WHERE sees the winner's row.
                where=or_(WorkLease.expires_at < now, WorkLease.holder == self.holder),
            )
            .returning(WorkLease.holder)
        )
        async with self.db.transaction() as session:
            got = (await session.execute(statement)).scalar_one_or_none()
        return got == self.holder

    async def release(self, name: str) -> None:
        """Give the lease up now (only if it is still ours)."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(WorkLease).where(WorkLease.name == name, WorkLease.holder == self.holder)
            )

    async def holder_of(self, name: str) -> str | None:
        """Who holds `name` now (None when free or expired)."""
        async with self.db.sessions() as session:
            row = await session.get(WorkLease, name)
        return row.holder if row is not None and row.expires_at > self.clock() else None

    @contextlib.asynccontextmanager
    async def held(self, name: str, ttl: float) -> AsyncIterator[bool]:
        """Acquire `name` and yield whether it was acquired; while the block runs the lease is renewed every
        ttl/3, and released at the end. A caller that got False must not do the work."""
        if not await self.acquire(name, ttl):
            yield False
            return
        renewer = asyncio.create_task(self._renew(name, ttl), name=f"lease-{name}")
        try:
            yield True
        finally:
            await cancelled(renewer)
            with contextlib.suppress(Exception):  # an expired lease is freed by time anyway
                await self.release(name)

    async def _renew(self, name: str, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await self.acquire(name, ttl):
                    log.warning("lease %s was taken over by another replica", name)
                    return
            except Exception:
                log.warning("could not renew lease %s", name, exc_info=True)


class LeaseColumns:
    """Columns of a job table whose rows replicas claim: who holds a row and until when. `lease_owner` stays
    set after the lease ends (expired or given back), so a claim can tell a fresh row from one another
    replica already started (and may have left partial output of)."""

    lease_owner: Mapped[str | None] = mapped_column(String(96), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)


def claimable(query: Select[Any], db: Database) -> Select[Any]:
    """`query` with `FOR UPDATE SKIP LOCKED` on PostgreSQL: concurrent claimers skip each other's rows
    instead of waiting for them or taking them twice. (SQLite has one writer; nothing to add.)"""
    return query if db.is_sqlite else query.with_for_update(skip_locked=True)


class LeasedRows:
    """Leases on the rows of one job table (a model with `LeaseColumns`) that are being worked: a row is
    claimed by setting its lease, kept by `heartbeat` while it is `running`, and claimable again by others
    once the lease expires (`expired`)."""

    def __init__(
        self,
        db: Database,
        model: Any,
        *,
        running: Iterable[str],
        ttl: float = 30.0,
        holder: str = INSTANCE_ID,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.model = model
        self.running = tuple(running)  # the statuses of a row being worked
        self.ttl = ttl
        self.holder = holder
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def lease_values(self, now: datetime | None = None) -> dict[str, Any]:
        """The column values that claim a row for this replica (set them in the claiming transaction)."""
        return {
            "lease_owner": self.holder,
            "lease_expires_at": (now or self.clock()) + timedelta(seconds=self.ttl),
        }

    def expired(self, now: datetime | None = None) -> Any:
        """The condition "running, but nobody holds it": its replica died (or never set a lease: a row left
        by a version before leases)."""
        model = self.model
        return and_(
            model.status.in_(self.running),
            or_(model.lease_expires_at.is_(None), model.lease_expires_at < (now or self.clock())),
        )

    async def expire_gone_holders(self) -> int:
        """End now the leases of running rows whose holder was a process on this host that has died (see
        `holder_is_gone`); returns how many rows that freed."""
        async with self.db.transaction() as session:
            holders = (
                await session.scalars(
                    select(self.model.lease_owner)
                    .where(self.model.status.in_(self.running), self.model.lease_expires_at.is_not(None))
                    .distinct()
                )
            ).all()
            gone = [h for h in holders if holder_is_gone(h)]
            if not gone:
                return 0
            result = await session.execute(
                update(self.model)
                .where(self.model.status.in_(self.running), self.model.lease_owner.in_(gone))
                .values(lease_expires_at=None)
            )
        return int(result.rowcount or 0)

    def mine(self) -> Any:
        """The condition "running under this replica's lease"."""
        return and_(self.model.status.in_(self.running), self.model.lease_owner == self.holder)

    async def heartbeat(self) -> int:
        """Extend the lease of every running row this replica holds; returns how many."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(self.model)
                .where(self.mine())
                .values(lease_expires_at=self.clock() + timedelta(seconds=self.ttl))
            )
        return int(result.rowcount or 0)

    def start(self) -> None:
        """Heartbeat every ttl/3 in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._beat(), name=f"leases-{self.model.__tablename__}")

    async def stop(self) -> None:
        self._task = await cancelled(self._task)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.heartbeat()
            except Exception:  # the database away for a moment: the next beat tries again
                log.warning("lease heartbeat failed", exc_info=True)

    async def give_back(self, **values: Any) -> list[str]:
        """Return every running row this replica holds (at shutdown): set `values` (e.g. status="pending")
        and end the lease now, so another replica takes them at once instead of after the TTL. Returns ids."""
        async with self.db.transaction() as session:
            ids = list((await session.scalars(select(self.model.id).where(self.mine()))).all())
            if ids:
                await session.execute(
                    update(self.model).where(self.model.id.in_(ids)).values(lease_expires_at=None, **values)
                )
        return ids


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock (Python's hash() differs between processes)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextlib.asynccontextmanager
async def advisory_lock(db: Database, name: str, *, poll: float | None = None) -> AsyncIterator[None]:
    """Hold the cross-replica lock `name` for the block (PostgreSQL session advisory lock on a connection
    kept for the block; if this process dies the server frees it). A no-op on SQLite (one host, one
    writer).

    `poll`: wait by trying every `poll` seconds instead of blocking in a statement. Needed when the block
    runs DDL such as CREATE INDEX CONCURRENTLY, which waits for every open transaction: a replica blocked
    inside `pg_advisory_lock` is one, so the holder would wait for the waiter forever."""
    if db.is_sqlite:
        yield
        return
    key = _lock_key(name)
    async with db.engine.connect() as connection:
        if poll is None:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        else:
            while True:
                got = (
                    await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
                ).scalar()
                await connection.commit()  # idle between tries: no open transaction for others to wait on
                if got:
                    break
                await asyncio.sleep(poll)
        await connection.commit()  # the lock is the session's, not the transaction's
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a dropped connection has freed it already
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                await connection.commit()


async def advisory_xact_lock(session: Any, name: str) -> None:
    """Take the lock `name` until the session's transaction ends (PostgreSQL; a no-op on SQLite)."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(_lock_key(name))))
