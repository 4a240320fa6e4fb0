"""The claim primitives replicas share (platform/kit/leases.py) and the outbox's row claims, on SQLite and
the real PostgreSQL: a named lease has one holder until it expires, an advisory lock excludes a second
holder, two pump passes never claim the same outbox row, and a dead holder's claims come back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from typing import ClassVar

from hearth.events import outbox
from hearth.events.bus import EventBus
from hearth.events.schemas import Event
from hearth.platform.db import Database, utcnow
from hearth.platform.kit.leases import INSTANCE_ID, Leases, advisory_lock, holder_is_gone


class LeaseProbe(Event):
    context: ClassVar[str] = "evtest"  # the stream tests/test_events.py's events use
    n: int = 0


async def test_a_named_lease_has_one_holder_until_it_expires_or_is_released(database: Database) -> None:
    now = utcnow()
    clock = {"a": now, "b": now}
    a = Leases(database, holder="replica-a", clock=lambda: clock["a"])
    b = Leases(database, holder="replica-b", clock=lambda: clock["b"])

    assert await a.acquire("sweep", ttl=10)
    assert not await b.acquire("sweep", ttl=10)  # a holds it
    assert await a.acquire("sweep", ttl=10)  # renewing is acquiring again
    assert await b.holder_of("sweep") == "replica-a"

    clock["b"] = now + timedelta(seconds=11)  # a died without releasing: its lease runs out
    assert await b.acquire("sweep", ttl=10)
    assert not await a.acquire("sweep", ttl=10)  # a, back, finds it taken
    await b.release("sweep")
    assert await a.acquire("sweep", ttl=10)


async def test_held_renews_while_the_block_runs_and_releases_after(database: Database) -> None:
    a, b = Leases(database, holder="replica-a"), Leases(database, holder="replica-b")
    async with a.held("job", ttl=0.3) as got:
        assert got
        await asyncio.sleep(0.5)  # longer than the TTL: only renewal keeps it
        assert not await b.acquire("job", ttl=0.3)
    assert await b.acquire("job", ttl=0.3)  # released at the end of the block
    async with a.held("job", ttl=0.3) as got:
        assert not got  # b holds it: the caller must skip the work


async def test_two_pump_passes_never_claim_the_same_outbox_row(database: Database) -> None:
    bus = EventBus(database)  # never started: rows wait in the outbox
    for n in range(30):
        await bus.publish(LeaseProbe(n=n))
    first, second = await asyncio.gather(outbox.due(database, limit=20), outbox.due(database, limit=20))
    seqs_first, seqs_second = {r.seq for r in first}, {r.seq for r in second}
    assert not seqs_first & seqs_second
    assert len(seqs_first | seqs_second) == 30
    assert await outbox.due(database, limit=20) == []  # everything is claimed

    # A pass released what it did not deliver; a dead pass's claim expires.
    await outbox.release(database, sorted(seqs_first))
    assert {r.seq for r in await outbox.due(database, limit=50)} == seqs_first
    later = utcnow() + timedelta(seconds=outbox.CLAIM_SECONDS + 1)
    assert {r.seq for r in await outbox.due(database, limit=50, now=later)} == seqs_first | seqs_second


async def test_an_advisory_lock_admits_one_holder_at_a_time(database: Database) -> None:
    inside: list[int] = []
    overlaps = 0

    async def worker(n: int) -> None:
        nonlocal overlaps
        other = Database(database.url)  # another replica: its own connections
        try:
            for _ in range(3):
                async with advisory_lock(other, "tests.lock"):
                    inside.append(n)
                    if len(inside) > 1:
                        overlaps += 1
                    await asyncio.sleep(0.02)
                    inside.remove(n)
        finally:
            await other.close()

    await asyncio.gather(worker(1), worker(2))
    assert overlaps == 0 or database.is_sqlite  # SQLite has one writer: the lock is a no-op there


def test_a_dead_process_on_this_host_holds_nothing() -> None:
    assert not holder_is_gone(INSTANCE_ID)  # this process
    host, pid, _suffix = INSTANCE_ID.rsplit("-", 2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    assert holder_is_gone(f"{host}-{int(dead.stdout)}-abc123")
    assert not holder_is_gone(f"{host}-{os.getppid()}-abc123")  # alive
    assert not holder_is_gone(f"another-host-{int(dead.stdout)}-abc123")  # never judged from here
    assert holder_is_gone(f"{host}-{pid}-000000")  # this pid, an earlier process's suffix
