"""The event bus over the real NATS JetStream on 127.0.0.1:4222 (these tests fail, never skip, without it)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import ClassVar
from urllib.parse import urlparse

import pytest
from sqlalchemy import select, text

from hearth.events import codec
from hearth.events.bus import EventBus
from hearth.events.models import OutboxEvent
from hearth.events.outbox import Retry
from hearth.events.schemas import Event
from hearth.platform.db import Database
from hearth.platform.migrate import upgrade
from tests.helpers import wait_for

# Same source as conftest.NATS_URL (conftest is not importable as a module under pytest 9).
NATS_URL = os.environ.get("HEARTH_TEST_NATS", "nats://127.0.0.1:4222")
FAST = Retry(max_attempts=3, base=0.02, cap=0.2)


class _NatsTestEvent(Event):
    context: ClassVar[str] = "evnats"


class Counted(_NatsTestEvent):
    n: int


class Blob(_NatsTestEvent):
    data: bytes


async def statuses(db: Database) -> list[str]:
    async with db.transaction() as s:
        return list(await s.scalars(select(OutboxEvent.status).order_by(OutboxEvent.seq)))


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    db = Database(url)
    yield db
    await db.close()


@contextlib.asynccontextmanager
async def nats_bus(db: Database, url: str, prefix: str) -> AsyncIterator[EventBus]:
    bus = EventBus(
        db,
        nats_url=url,
        prefix=prefix,
        retry=FAST,
        poll_interval=0.1,
        reconnect_wait=0.2,
        publish_timeout=0.5,
    )
    try:
        yield bus
    finally:
        await bus.stop()


class TcpProxy:
    """A cuttable line between the bus and NATS: close() drops every connection and stops listening."""

    def __init__(self, target: str) -> None:
        parsed = urlparse(target)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 4222)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            writer.transport.abort()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- tests -----------------------------------------------------------------------------------------


async def test_relay_and_consume_back(database: Database, prefix: str) -> None:
    got: list[Event] = []

    async def handler(ev: Event) -> None:
        got.append(ev)

    async with nats_bus(database, NATS_URL, prefix) as bus:
        bus.subscribe("basic", handler, contexts={"evnats"})
        await bus.start()
        small, blob = Counted(n=1), Blob(data=b"\x00\x01" * 10)
        await bus.publish(small)
        await bus.publish(blob)
        await wait_for(lambda: len(got) == 2 and bus.dispatched == 2)  # the ack may land after delivery
        assert got == [small, blob]
        assert await statuses(database) == ["dispatched", "dispatched"]
        assert bus.dispatched == 2 and bus.counters.consumed == 2

        # The stream holds the events under hearth-style subjects with dedupe id and content type.
        js = bus.relay.js
        stream = f"{prefix.upper()}_EVNATS"
        info = await js.stream_info(stream)
        assert info.config.subjects == [f"{prefix}.evnats.>"] and info.state.messages == 2
        stored = await js.get_msg(stream, seq=2)
        assert stored.subject == f"{prefix}.evnats.Blob"
        assert stored.headers["Nats-Msg-Id"] == blob.id
        assert stored.headers["Content-Type"] == codec.MSGPACK


async def test_same_row_relayed_twice_is_delivered_once(sqlite_db: Database, prefix: str) -> None:
    got: list[int] = []

    async def handler(ev: Counted) -> None:  # deliberately not idempotent: JetStream must dedupe
        got.append(ev.n)

    async with nats_bus(sqlite_db, NATS_URL, prefix) as bus:
        bus.subscribe("dedupe", handler, types={"Counted"})
        await bus.start()
        await bus.publish(Counted(n=1))
        await wait_for(lambda: got == [1])

        # As if the process died after JetStream's ack but before the row was marked dispatched.
        async with sqlite_db.transaction() as s:
            await s.execute(text("UPDATE event_outbox SET status = 'pending', dispatched_at = NULL"))
        bus.wake()
        await wait_for(lambda: bus.dispatched == 2)  # acked again, as a duplicate
        info = await bus.relay.js.stream_info(f"{prefix.upper()}_EVNATS")
        assert info.state.messages == 1
        await bus.publish(Counted(n=2))  # the consumer reaches it only after anything before it
        await wait_for(lambda: got[-1] == 2)
        assert got == [1, 2]


async def test_handler_failures_nak_then_term(sqlite_db: Database, prefix: str) -> None:
    flaky_calls: list[int] = []
    broken_calls: list[int] = []

    async def flaky(ev: Counted) -> None:
        flaky_calls.append(ev.n)
        if len(flaky_calls) < 2:
            raise ValueError("transient")

    async def broken(ev: Counted) -> None:
        broken_calls.append(ev.n)
        raise RuntimeError("always")

    async with nats_bus(sqlite_db, NATS_URL, prefix) as bus:
        bus.subscribe("flaky", flaky, contexts={"evnats"})
        bus.subscribe("broken", broken, contexts={"evnats"})
        await bus.start()
        await bus.publish(Counted(n=5))
        await wait_for(lambda: len(flaky_calls) == 2 and bus.counters.dead == 1)
        await bus.publish(Counted(n=6))  # once both have seen it, 5 was terminated for good
        await wait_for(lambda: flaky_calls[-1] == 6 and broken_calls[-1] == 6)
        assert flaky_calls == [5, 5, 6]
        # max_deliver bounds the redeliveries
        assert broken_calls[: FAST.max_attempts] == [5] * FAST.max_attempts
        assert broken_calls.count(5) == FAST.max_attempts


async def test_outage_events_wait_in_outbox_then_arrive_once(
    sqlite_db: Database, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hearth.events")
    proxy = TcpProxy(NATS_URL)
    await proxy.open()
    seen: list[int] = []

    async def handler(ev: Counted) -> None:
        seen.append(ev.n)

    async with nats_bus(sqlite_db, proxy.url, prefix) as bus:
        bus.subscribe("outage", handler, contexts={"evnats"}, idempotent=True)
        await bus.start()
        await bus.publish(Counted(n=0))
        await wait_for(lambda: seen == [0])

        await proxy.close()
        await wait_for(lambda: not bus.relay.nc.is_connected)
        n = 20
        for i in range(1, n + 1):
            await bus.publish(Counted(n=i))  # never fails while NATS is unreachable
        # The relay gives up after the publish timeout and backs off.
        await wait_for(lambda: "relay paused" in caplog.text)
        assert (await statuses(sqlite_db))[1:] == ["pending"] * n
        assert seen == [0]
        assert "relay paused" in caplog.text

        await proxy.open()  # same port: the client reconnects on its own
        await wait_for(lambda: len(seen) == n + 1, within=20)
        await wait_for(lambda: bus.dispatched == n + 1)
        assert set(await statuses(sqlite_db)) == {"dispatched"}
        await bus.publish(Counted(n=n + 1))  # behind any copy still on its way
        await wait_for(lambda: seen[-1] == n + 1)
        assert sorted(seen) == list(range(n + 2))  # none lost, none doubled
    await proxy.close()


async def test_bus_starts_while_nats_is_down(
    sqlite_db: Database, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hearth.events")
    proxy = TcpProxy(NATS_URL)  # not open yet: nothing listens on its port
    seen: list[int] = []

    async def handler(ev: Counted) -> None:
        seen.append(ev.n)

    async with nats_bus(sqlite_db, proxy.url, prefix) as bus:
        bus.subscribe("late", handler, contexts={"evnats"}, idempotent=True)
        await asyncio.wait_for(bus.start(), timeout=1)
        for i in range(3):
            await bus.publish(Counted(n=i))
        await wait_for(lambda: "unreachable" in caplog.text)  # a connect attempt has failed
        assert await statuses(sqlite_db) == ["pending"] * 3

        await proxy.open()
        await wait_for(lambda: sorted(seen) == [0, 1, 2], within=15)
        await wait_for(lambda: bus.dispatched == 3)
        assert seen == [0, 1, 2]
    await proxy.close()
