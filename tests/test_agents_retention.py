"""Agent runs expire through the real wiring (rule registered by the agents context, age from settings), on
SQLite and PostgreSQL: a run that ended before the cutoff goes with its LangGraph checkpoints; a younger run
and a running one stay, checkpoints and all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import select, update

from hearth.agents.models import AgentRun
from hearth.agents.ports import SERVICE as AGENTS
from hearth.agents.runtime import RunDeps
from hearth.agents.schemas import RouterRequest
from hearth.agents.wiring import CONTEXT as AGENTS_CONTEXT
from hearth.auth.service import AuthService
from hearth.config import Settings
from hearth.gateway.service import Caller
from hearth.platform.core import build_platform, close_platform
from hearth.rag.wiring import CONTEXT as RAG_CONTEXT
from tests.fake_openai import FakeOpenAI
from tests.harness import rag_config

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


async def _checkpoints(saver, run_id: str) -> int:  # type: ignore[no-untyped-def]
    return len([c async for c in saver.alist({"configurable": {"thread_id": run_id}})])


async def test_ended_runs_expire_with_their_checkpoints(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    upstream = FakeOpenAI(model="m0").start()
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump(rag_config(upstream.url)))
    settings = Settings(
        data_dir=tmp_path / "data",
        config_file=config,
        database_url=database_url,
        retention_sweep_seconds=0,
        agents_mcp_http=False,
        agents_retention_days=30,
    )
    platform = await build_platform(settings, [RAG_CONTEXT, AGENTS_CONTEXT])
    try:
        platform.retention.clock = lambda: NOW
        agents = platform.ports.require(AGENTS)
        user = (await AuthService(platform.db).create_user(username="ada")).id
        deps = RunDeps(user_id=user, caller=Caller(user_id=user))
        ids = []
        for _ in range(3):
            active = await agents.start_router(deps=deps, request=RouterRequest(query="hello there"))
            last = await agents.runs.wait(active)
            assert last["type"] == "done", last
            ids.append(last["run"]["id"])
        saver = agents.runs.graphs["router"].checkpointer
        assert all([await _checkpoints(saver, run_id) > 0 for run_id in ids])

        old, young, running = ids
        async with platform.db.transaction() as s:
            await s.execute(
                update(AgentRun).where(AgentRun.id == old).values(updated_at=NOW - timedelta(days=31))
            )
            await s.execute(
                update(AgentRun).where(AgentRun.id == young).values(updated_at=NOW - timedelta(days=29))
            )
            await s.execute(
                update(AgentRun)
                .where(AgentRun.id == running)
                .values(status="running", updated_at=NOW - timedelta(days=90))
            )

        swept = await platform.retention.run_once()
        assert swept["agents.runs"] == 1
        async with platform.db.sessions() as s:
            left = set(await s.scalars(select(AgentRun.id)))
        assert left == {young, running}
        assert await _checkpoints(saver, old) == 0
        assert await _checkpoints(saver, young) > 0 and await _checkpoints(saver, running) > 0
        assert (await platform.retention.run_once())["agents.runs"] == 0
    finally:
        await close_platform(platform)
        upstream.stop()
