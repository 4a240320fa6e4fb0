"""Connectors on SQLite and PostgreSQL: Todoist against the fake API v1 (pages, 429 backoff, the completed
tasks cursor), the token vault, local Markdown and .ics sources, and a failing source that neither stops the
others nor hides its error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import select

from hearth.events.models import OutboxEvent
from hearth.tips.models import TipsCredential
from hearth.tips.schemas import ConnectorIn
from tests.fake_todoist import task
from tests.tips_helpers import day, start_todoist, todoist_state
from tests.tips_world import add_users, build

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Hearth tests//EN
BEGIN:VEVENT
UID:ev-1@test
DTSTAMP:20260101T000000Z
DTSTART:20300105T090000Z
DTEND:20300105T100000Z
SUMMARY:Dentist
END:VEVENT
BEGIN:VTODO
UID:todo-1@test
DTSTAMP:20260101T000000Z
DUE;VALUE=DATE:20200101
SUMMARY:Return the library books
CATEGORIES:Errands
END:VTODO
BEGIN:VTODO
UID:todo-2@test
DTSTAMP:20260101T000000Z
STATUS:COMPLETED
COMPLETED:20260101T120000Z
SUMMARY:Water the plants
END:VTODO
END:VCALENDAR
"""

MARKDOWN = """# Work
- [ ] Send the invoice due:2020-03-01
- [x] Update the wiki ✅ 2026-01-02
## Home
* [ ] Fix the bike 📅 2099-01-01
- not a task
"""


async def test_todoist_pages_backoff_cursor_and_vault(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = todoist_state()
    state.tasks += [task(f"bulk-{i}", f"Bulk task {i}", due=day(5)) for i in range(446)]  # 450: three pages
    state.rate_limited = 2  # the first two requests get 429 + Retry-After
    todoist = start_todoist(state)
    try:
        world = build(database, tmp_path, todoist_url=todoist.url)
        (user,) = await add_users(database, 1)
        out = await world.connectors.add(user_id=user, body=ConnectorIn(kind="todoist", token=state.token))
        assert "token" not in out.model_dump() and out.has_credential
        async with database.sessions() as s:
            secret = (await s.scalars(select(TipsCredential.secret))).one()
        assert state.token.encode() not in bytes(secret)  # encrypted at rest

        synced = await world.connectors.sync(user_id=user, connector_id=out.id)
        assert synced.status == "ok" and synced.failures == 0, synced.last_error
        assert synced.signals == {"task.open": 450, "task.completed": 2, "project": 3}
        pages = todoist.requests("/api/v1/tasks")
        assert len(pages) == 3 and "cursor" in pages[-1]  # three pages of 200
        assert len(todoist.requests("/api/v1/projects")) == 3  # the first request: two 429s, then it passed
        first_since = todoist.requests("/api/v1/tasks/completed/by_completion_date")[-1]["since"][0]

        state.completed.append(task("t-new", "Call the bank", completed_at=datetime.now(UTC).isoformat()))
        again = await world.connectors.sync(user_id=user, connector_id=out.id)
        assert again.signals["task.completed"] == 3
        second_since = todoist.requests("/api/v1/tasks/completed/by_completion_date")[-1]["since"][0]
        assert second_since > first_since  # the cursor moved: only the new window is asked for
    finally:
        todoist.stop()


async def test_a_failing_connector_does_not_stop_the_others(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = todoist_state()
    state.garbage = True
    todoist = start_todoist(state)
    try:
        world = build(database, tmp_path, todoist_url=todoist.url)
        (user,) = await add_users(database, 1)
        (world.files / "tasks.md").write_text(MARKDOWN)
        (world.files / "cal.ics").write_text(ICS)
        bad = await world.connectors.add(user_id=user, body=ConnectorIn(kind="todoist", token=state.token))
        wrong = await world.connectors.add(user_id=user, body=ConnectorIn(kind="todoist", token="wrong"))
        md = await world.connectors.add(user_id=user, body=ConnectorIn(kind="markdown", path="tasks.md"))
        ics = await world.connectors.add(user_id=user, body=ConnectorIn(kind="ics", path="cal.ics"))
        missing = await world.connectors.add(user_id=user, body=ConnectorIn(kind="ics", path="gone.ics"))

        before = datetime.now(UTC)
        result = {c.id: c for c in await world.connectors.sync_user(user_id=user)}
        assert result[bad.id].status == "error" and "not JSON" in (result[bad.id].last_error or "")
        assert result[bad.id].next_sync_at >= before + timedelta(seconds=59)
        assert result[wrong.id].last_error == "Todoist refused the token (HTTP 401)"
        assert result[missing.id].last_error == "gone.ics: no such file"
        assert result[md.id].status == "ok" and result[md.id].signals == {"task.open": 2, "task.completed": 1}
        assert result[ics.id].status == "ok"
        assert result[ics.id].signals == {"calendar.event": 1, "task.open": 1, "task.completed": 1}

        second = {c.id: c for c in await world.connectors.sync_user(user_id=user)}[bad.id]
        assert second.failures == 2
        wait = second.next_sync_at - (second.last_sync_at or before)
        assert wait >= timedelta(seconds=119)  # doubled
        state.garbage = False
        healed = await world.connectors.sync(user_id=user, connector_id=bad.id)
        assert healed.status == "ok" and healed.failures == 0 and healed.last_error is None

        # Every fetch told the bus: one SignalsReceived per kind; each failure a ConnectorFailed.
        async with database.sessions() as s:
            rows = (
                await s.execute(
                    select(OutboxEvent.type, OutboxEvent.payload).where(OutboxEvent.context == "tips")
                )
            ).all()
        kinds = [orjson.loads(p)["kind"] for t, p in rows if t == "SignalsReceived"]
        assert kinds.count("calendar.event") == 2 and kinds.count("project") == 1
        failed = sum(t == "ConnectorFailed" for t, _ in rows)
        assert failed == 3 * 2  # the garbage, the wrong token and the missing file, in both passes
    finally:
        todoist.stop()


async def test_markdown_done_ticks_the_box(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = build(database, tmp_path)
    (user,) = await add_users(database, 1)
    path = world.files / "tasks.md"
    path.write_text(MARKDOWN)
    md = await world.connectors.add(user_id=user, body=ConnectorIn(kind="markdown", path="tasks.md"))
    await world.connectors.sync(user_id=user, connector_id=md.id)
    from hearth.tips.sources.localfiles import _task_id

    await world.connectors.close_task(user_id=user, ref=f"{md.id}:{_task_id('Work', 'Send the invoice')}")
    lines = path.read_text().splitlines()
    assert lines[1].startswith("- [x] Send the invoice due:2020-03-01 ✅ ")
    assert lines[4] == "* [ ] Fix the bike 📅 2099-01-01"  # the others untouched
    synced = await world.connectors.sync(user_id=user, connector_id=md.id)
    assert synced.signals == {"task.open": 1, "task.completed": 2}


async def test_the_scheduler_syncs_due_connectors_and_runs_due_agents(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hearth.tips.models import AgentOutput
    from hearth.tips.scheduler import Scheduler

    world = build(database, tmp_path)
    (user,) = await add_users(database, 1)
    (world.files / "tasks.md").write_text(MARKDOWN)
    await world.profile.set_consent(user_id=user, key="tasks.read", granted=True)
    md = await world.connectors.add(user_id=user, body=ConnectorIn(kind="markdown", path="tasks.md"))
    await Scheduler(world.connectors, world.precompute, tick_seconds=0).tick()
    assert (await world.connectors.get(user_id=user, connector_id=md.id)).status == "ok"
    async with database.sessions() as s:
        agents = set(await s.scalars(select(AgentOutput.agent_id).where(AgentOutput.user_id == user)))
    assert agents == {"overdue-tasks", "focus-area", "momentum", "time-of-day"}
