"""Agents by manifest and pre-compute, on SQLite and PostgreSQL: manifests refused with file and field named
(also at server start-up), an agent added from an extra folder, batched pre-compute with eligibility, a new
agent version invalidating outputs, one run per agent at a time, consent revocation and privacy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from hearth.config import Settings
from hearth.platform.core import build_platform
from hearth.platform.db import Database, new_id
from hearth.tips import privacy
from hearth.tips.manifest import BUILTIN_DIR, ManifestError, Registry
from hearth.tips.models import AgentOutput, TipsConnector, TipsConsent, TipsSignal
from hearth.tips.orchestrator import Orchestrator
from hearth.tips.profile import ensure_profile
from hearth.tips.schemas import ConnectorIn, PreferencesUpdate
from hearth.tips.wiring import CONTEXT
from tests.tips_world import add_users, build

GOOD = (BUILTIN_DIR / "overdue_tasks.yaml").read_text()


def _agent_dir(tmp_path: Path, manifest: str, code: str | None = None, name: str = "mine") -> Path:
    folder = tmp_path / "agents"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(manifest)
    if code is not None:
        (folder / f"{name}.py").write_text(code)
    return folder


CODE = (BUILTIN_DIR / "overdue_tasks.py").read_text()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            ("consents: [tasks.read]", "consents: [tasks.read, mind.read]"),
            "consents",
            "unknown consent 'mind.read'",
        ),
        (
            ("type: object\n  required: [count", "type: objekt\n  required: [count"),
            "output_schema",
            "not a valid JSON Schema",
        ),
        (
            ("consents: [tasks.read]", "consents: []"),
            "(top level)",
            "inputs: 'task.open' needs consent 'tasks.read'",
        ),
        (("inputs: [task.open]", "inputs: [task.opened]"), "inputs", "unknown signal kind 'task.opened'"),
        (("id: overdue-tasks", "id: Overdue Tasks"), "id", "String should match pattern"),
        (("ttl_minutes: 60", "ttl_minutes: -1"), "ttl_minutes", "greater than 0"),
        (('version: "1"', 'versio: "1"'), "version", "Field required"),
    ],
)
def test_bad_manifests_are_refused_with_file_and_field(tmp_path, change, field, message) -> None:  # type: ignore[no-untyped-def]
    folder = _agent_dir(tmp_path, GOOD.replace(*change).replace("id: overdue-tasks", "id: mine"), CODE)
    with pytest.raises(ManifestError) as caught:
        Registry.load([folder])
    text_ = str(caught.value)
    assert text_.startswith(f"{folder / 'mine.yaml'}: ") and message in text_, text_
    if field != "(top level)":
        assert f": {field}" in text_


def test_missing_function_and_duplicate_id(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = _agent_dir(tmp_path, GOOD.replace("id: overdue-tasks", "id: mine"))
    with pytest.raises(ManifestError, match=r"mine.yaml: function: no mine.py beside the manifest"):
        Registry.load([folder])
    folder = _agent_dir(tmp_path, GOOD, CODE)
    with pytest.raises(ManifestError, match=r"mine.yaml: id: 'overdue-tasks' is already declared"):
        Registry.load([folder])


async def test_a_bad_manifest_stops_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = _agent_dir(
        tmp_path, GOOD.replace("id: overdue-tasks", "id: mine").replace("tasks.read]", "tasks.reed]"), CODE
    )
    config = tmp_path / "hearth.yaml"
    config.write_text("include_defaults: false\n")
    settings = Settings(data_dir=tmp_path / "data", config_file=config, tips_agent_dirs=(folder,))
    with pytest.raises(ManifestError, match=r"mine.yaml: consents: unknown consent 'tasks.reed'"):
        await build_platform(settings, [CONTEXT])


EXAMPLE = """id: weekend-planner
version: "1"
description: On Fridays, suggests picking the weekend's one task.
consents: [tasks.read]
inputs: [task.open]
ttl_minutes: 120
priority: 45
output_schema:
  type: object
  required: [open]
  properties:
    open: {type: integer, minimum: 0}
"""
EXAMPLE_CODE = """from hearth.tips.agentkit import AgentInput, AgentResult, Line


def run(inp: AgentInput) -> AgentResult | None:
    tasks = inp.signals["task.open"]
    if not tasks:
        return None
    return AgentResult([Line(f"{len(tasks)} open tasks: pick one for the weekend.")], {"open": len(tasks)})
"""


async def _grant(db: Database, users: list[str], key: str) -> None:
    async with db.transaction() as s:
        await s.execute(
            insert(TipsConsent),
            [{"user_id": u, "key": key, "granted": True, "updated_at": datetime.now(UTC)} for u in users],
        )


async def _tasks(db: Database, users: list[str]) -> None:
    """Per user: a connector and three open tasks, one overdue."""
    now = datetime.now(UTC)
    connectors, signals = [], []
    for u in users:
        cid = new_id()
        connectors.append(
            {
                "id": cid,
                "user_id": u,
                "kind": "markdown",
                "name": "t",
                "config": {},
                "cursor": {},
                "status": "ok",
                "failures": 0,
                "next_sync_at": now,
                "created_at": now,
            }
        )
        for i, due in enumerate((now - timedelta(days=2), now + timedelta(days=3), None)):
            signals.append(
                {
                    "id": new_id(),
                    "user_id": u,
                    "connector_id": cid,
                    "kind": "task.open",
                    "external_id": f"x{i}",
                    "title": f"Task {i}",
                    "project": "Work" if i else "Home",
                    "due_at": due,
                    "at": None,
                    "priority": 1,
                    "updated_at": now,
                }
            )
    async with db.transaction() as s:
        await s.execute(insert(TipsConnector), connectors)
        await s.execute(insert(TipsSignal), signals)


async def _outputs(db: Database, agent_id: str) -> set[str]:
    async with db.sessions() as s:
        return set(await s.scalars(select(AgentOutput.user_id).where(AgentOutput.agent_id == agent_id)))


async def test_precompute_in_batches_with_eligibility(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    extra = _agent_dir(tmp_path, EXAMPLE, EXAMPLE_CODE, name="weekend_planner")
    world = build(database, tmp_path, registry=Registry.load([extra]))
    world.precompute.batch_size = 25  # several batches from few users
    users = await add_users(database, 62)
    consenting, others = users[:60], users[60:]
    async with database.transaction() as s:
        for u in users:  # a profile each (what a first visit to /api/tips creates)
            await ensure_profile(s, u)
    await _grant(database, consenting, "tasks.read")
    await _tasks(database, users)
    await world.profile.put_context(user_id=users[1], name="on vacation", description="")
    await world.profile.activate(user_id=users[1], name="on vacation")
    changes = PreferencesUpdate(disabled_agents=["overdue-tasks"])
    await world.profile.update_preferences(user_id=users[2], changes=changes)

    results = {r.agent_id: r for r in await world.precompute.run_due()}
    assert set(results) == {
        "focus-area",
        "momentum",
        "overdue-tasks",
        "recent-patterns",
        "time-of-day",
        "weekend-planner",
    }
    assert results["time-of-day"].written == 62  # needs no consent
    assert results["overdue-tasks"].users == 58 and results["overdue-tasks"].errors == 0
    overdue = await _outputs(database, "overdue-tasks")
    assert len(overdue) == 58 and users[1] not in overdue and users[2] not in overdue
    assert not overdue & set(others)
    assert len(await _outputs(database, "weekend-planner")) == 60  # the added agent ran like the built-ins
    assert await world.precompute.run_due() == []  # nothing is due again before its schedule

    # A consent revoked: that user's outputs of the agents needing it go at once, with an audit row.
    await world.profile.set_consent(user_id=users[0], key="tasks.read", granted=False)
    assert users[0] not in await _outputs(database, "overdue-tasks")
    assert users[0] not in await _outputs(database, "weekend-planner")
    assert users[0] in await _outputs(database, "time-of-day")
    log = await world.profile.consent_log(user_id=users[0], limit=5)
    assert log[0].action == "revoked" and log[0].outputs_deleted == 4


async def test_a_new_agent_version_invalidates_old_outputs(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = build(database, tmp_path)
    (user,) = await add_users(database, 1)
    await world.profile.get(user_id=user)
    await world.precompute.run(world.registry.get("time-of-day"), user_ids=[user])  # type: ignore[arg-type]
    # As if written by the agent's previous version: the next tip ignores it, start-up deletes it.
    async with database.transaction() as s:
        await s.execute(text("UPDATE agent_outputs SET agent_version = '0'"))
    orchestrator = Orchestrator(database, world.bus, None, world.registry, world.precompute, world.profile)  # type: ignore[arg-type]
    assert (await orchestrator.assemble(user, datetime.now(UTC))).snippets == []
    assert await world.precompute.drop_stale_versions() == 1
    assert await _outputs(database, "time-of-day") == set()


async def test_one_run_per_agent_at_a_time_across_processes(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two services over the same database (on PostgreSQL: two engines, as two processes would have):
    while one holds an agent's lock, the other's scheduled pass skips it and a run for one user waits."""
    first = build(database, tmp_path)
    other_db = Database(database.url) if not database.is_sqlite else database
    second = build(other_db, tmp_path)
    if database.is_sqlite:
        second.precompute.locks = first.precompute.locks  # SQLite: one process, one set of locks
    (user,) = await add_users(database, 1)
    await first.profile.get(user_id=user)
    agent = first.registry.get("time-of-day")
    assert agent is not None
    try:
        async with first.precompute.locks.hold(agent.id, wait=True) as held:
            assert held
            assert await second.precompute.run(agent) is None  # skipped: another run holds the lock
            assert await second.precompute.run_for([agent], [user], wait=False) == []  # a tip does not wait
            waiting = asyncio.create_task(second.precompute.run(agent, user_ids=[user]))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # waits for the lock rather than running alongside
        result = await waiting
        assert result is not None and result.written == 1
    finally:
        if other_db is not database:
            await other_db.close()


async def test_export_and_erase_every_tips_row_of_a_user(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = build(database, tmp_path)
    me, other = await add_users(database, 2)
    for u in (me, other):
        await world.profile.set_consent(user_id=u, key="tasks.read", granted=True)
        await world.connectors.add(user_id=u, body=ConnectorIn(kind="todoist", token=f"secret-{u}"))
        await world.profile.put_context(user_id=u, name="focus", description="")
    await _tasks(database, [me, other])
    for agent in world.registry:
        await world.precompute.run(agent, user_ids=[me, other])

    exported = await privacy.export_user(database, me)
    assert exported["tips_credentials"] and "secret" not in exported["tips_credentials"][0]
    assert f"secret-{me}" not in repr(exported)
    assert {r["user_id"] for rows in exported.values() for r in rows} == {me}
    assert exported["tips_consents"][0]["key"] == "tasks.read" and exported["agent_outputs"]

    await privacy.erase_user(database, me)
    assert all(not rows for rows in (await privacy.export_user(database, me)).values())
    kept = await privacy.export_user(database, other)
    assert kept["tips_credentials"] and kept["agent_outputs"] and kept["tips_signals"]
    async with database.sessions() as s:
        for model in privacy.TABLES:
            assert await s.scalar(select(func.count()).select_from(model).where(model.user_id == me)) == 0
