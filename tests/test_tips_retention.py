"""The tips scheduler's run log is pruned by age on SQLite and PostgreSQL: old finished runs go, recent and
unfinished ones stay, and an agent whose runs all went is simply due again."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from hearth.config import Settings
from hearth.platform.core import build_platform, close_platform
from hearth.platform.db import utcnow
from hearth.tips.models import AgentRun
from hearth.tips.retention import agent_runs_rule
from hearth.tips.wiring import CONTEXT
from tests.tips_world import add_users, build


async def test_old_finished_runs_are_pruned_and_their_agents_run_again(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = build(database, tmp_path)
    await add_users(database, 3)
    first = {r.agent_id for r in await world.precompute.run_due()}
    assert first and await world.precompute.run_due() == []  # nothing due before its schedule

    now = utcnow()
    old_agent, *recent_agents = sorted(first)
    async with database.transaction() as s:
        await s.execute(
            update(AgentRun).where(AgentRun.agent_id == old_agent).values(started_at=now - timedelta(days=40))
        )
        # An unfinished run (a pass that died midway) is never pruned, however old.
        s.add(
            AgentRun(
                id="unfinished",
                agent_id=recent_agents[0],
                agent_version="1",
                scope="all",
                started_at=now - timedelta(days=90),
            )
        )
    rule = agent_runs_rule(database, 30)
    assert await rule.sweep(now - rule.max_age) == 1
    async with database.sessions() as s:
        left = {(r.agent_id, r.id == "unfinished") for r in await s.scalars(select(AgentRun))}
    assert (old_agent, False) not in left
    assert {a for a, _ in left} == set(recent_agents) and (recent_agents[0], True) in left

    # Its log gone, the old agent is due again: the scheduler reads "never ran", not an error.
    assert [r.agent_id for r in await world.precompute.run_due()] == [old_agent]


async def test_the_rule_is_registered_from_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "hearth.yaml"
    config.write_text("include_defaults: false\n")
    for days, registered in ((30, True), (0, False)):
        settings = Settings(
            data_dir=tmp_path / f"data{days}",
            config_file=config,
            retention_sweep_seconds=0,
            tips_tick_seconds=0,
            tips_runs_retention_days=days,
        )
        platform = await build_platform(settings, [CONTEXT])
        try:
            assert ("tips.agent_runs" in [r.name for r in platform.retention.rules]) is registered
        finally:
            await close_platform(platform)
