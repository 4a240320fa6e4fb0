"""The tips scheduler's log (`tips_agent_runs`: one row per agent per pre-compute pass, and one per user
asked for on demand) is pruned by age; only the newest run per agent matters to the scheduler, and an agent
without a recent one is simply due."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from hearth.platform.db import Database
from hearth.platform.retention import RetentionRule
from hearth.tips.models import AgentRun

BATCH = 5000


def agent_runs_rule(db: Database, days: float) -> RetentionRule:
    async def sweep(cutoff: datetime) -> int:
        removed = 0
        while True:
            async with db.transaction() as s:
                old = (
                    select(AgentRun.id)
                    .where(AgentRun.finished_at.is_not(None), AgentRun.started_at < cutoff)
                    .limit(BATCH)
                    .scalar_subquery()
                )
                count = (await s.execute(delete(AgentRun).where(AgentRun.id.in_(old)))).rowcount or 0  # type: ignore[attr-defined]
            removed += count
            if count < BATCH:
                return removed

    return RetentionRule("tips.agent_runs", timedelta(days=days), sweep)
