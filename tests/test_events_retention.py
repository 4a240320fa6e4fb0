"""The outbox's retention rule through the real wiring (registered by build_platform, age from settings), on
SQLite and PostgreSQL: delivered events and idempotency entries older than their age go; pending and dead
rows, younger rows and ledger entries JetStream could still replay stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy import select, update

from hearth.config import Settings
from hearth.events import outbox
from hearth.events.models import ConsumedEvent, OutboxEvent
from hearth.events.schemas import Event
from hearth.platform.core import build_platform, close_platform
from tests.helpers import wait_for

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class _RetentionEvent(Event):
    context: ClassVar[str] = "evretain"


class Noted(_RetentionEvent):
    n: int


def _settings(tmp_path, database_url: str, **kwargs) -> Settings:  # type: ignore[no-untyped-def]
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"include_defaults": False}))
    return Settings(
        data_dir=tmp_path,
        config_file=config,
        database_url=database_url,
        retention_sweep_seconds=0,
        **kwargs,
    )


async def test_delivered_events_and_old_ledger_entries_are_pruned_by_age(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = await build_platform(_settings(tmp_path, database_url), [])
    try:
        platform.retention.clock = lambda: NOW
        db, bus = platform.db, platform.bus
        handled: list[int] = []

        async def note(ev: Noted) -> None:
            handled.append(ev.n)

        bus.subscribe("retention-test", note, idempotent=True)
        events = [Noted(n=i) for i in range(8)]
        for ev in events:
            await bus.publish(ev)
        await wait_for(lambda: len(handled) == 8)
        await wait_for(lambda: bus.dispatched >= 8)
        await bus.stop()  # nothing else touches the rows from here

        # Ages: dispatched 10 d, 8 d, 6 d, 1 h ago; one pending and one dead, both 30 d old.
        dispatched_ages = {
            0: timedelta(days=10),
            1: timedelta(days=8),
            2: timedelta(days=6),
            3: timedelta(hours=1),
        }
        # Ledger entries: 9 d (beyond JetStream's 7-day replay + 1 day: goes), 7.5 d (past the 7-day outbox
        # age but still replayable: stays), 1 d (stays).
        ledger_ages = {0: timedelta(days=9), 1: timedelta(days=7, hours=12), 2: timedelta(days=1)}
        async with db.transaction() as s:
            for i, age in dispatched_ages.items():
                await s.execute(
                    update(OutboxEvent).where(OutboxEvent.id == events[i].id).values(dispatched_at=NOW - age)
                )
            for i, age in ledger_ages.items():
                await s.execute(
                    update(ConsumedEvent)
                    .where(ConsumedEvent.event_id == events[i].id)
                    .values(created_at=NOW - age)
                )
            await s.execute(
                update(ConsumedEvent)
                .where(ConsumedEvent.event_id.in_([e.id for e in events[3:]]))
                .values(created_at=NOW)
            )
            await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == events[4].id)
                .values(status=outbox.PENDING, dispatched_at=None, created_at=NOW - timedelta(days=30))
            )
            await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == events[5].id)
                .values(status=outbox.DEAD, dispatched_at=NOW - timedelta(days=30))
            )
            await s.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([e.id for e in events[6:]]))
                .values(dispatched_at=NOW - timedelta(minutes=5))
            )

        swept = await platform.retention.run_once()
        assert swept["events.outbox"] == 2 + 1  # outbox rows 0 and 1, ledger entry 0

        async with db.transaction() as s:
            left = {row.id: row.status for row in await s.scalars(select(OutboxEvent))}
            ledger = set(await s.scalars(select(ConsumedEvent.event_id)))
        ids = [e.id for e in events]
        assert ids[0] not in left and ids[1] not in left
        assert {i: left[ids[i]] for i in range(2, 8)} == {
            2: "dispatched",
            3: "dispatched",
            4: "pending",
            5: "dead",
            6: "dispatched",
            7: "dispatched",
        }
        assert ledger == set(ids[1:])
        assert await platform.retention.run_once() == {**swept, "events.outbox": 0}
    finally:
        await close_platform(platform)


async def test_a_backlog_is_pruned_in_batches_until_none_is_left(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = await build_platform(_settings(tmp_path, database_url), [])
    try:
        db = platform.db
        async with db.transaction() as s:
            for i in range(7):
                row = outbox.new_row(Noted(n=i))
                row.status, row.dispatched_at = outbox.DISPATCHED, NOW - timedelta(days=30)
                s.add(row)
        removed = await outbox.prune(
            db, dispatched_before=NOW - timedelta(days=7), consumed_before=NOW, batch=3
        )
        assert removed == 7
        async with db.transaction() as s:
            assert list(await s.scalars(select(OutboxEvent.seq))) == []
    finally:
        await close_platform(platform)


async def test_zero_days_keeps_events_forever_and_a_negative_age_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'hearth.db'}"
    platform = await build_platform(_settings(tmp_path, url, events_retention_days=0), [])
    try:
        assert "events.outbox" not in [rule.name for rule in platform.retention.rules]
    finally:
        await close_platform(platform)
    with pytest.raises(ValidationError, match="events_retention_days"):
        _settings(tmp_path, url, events_retention_days=-1)
